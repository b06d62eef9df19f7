"""How many LLM positions one LLaVA-NeXT image takes: a pure function of the image size and the processor config.

Source (facts, re-derived here): transformers ``LlavaNextProcessor._get_number_of_features`` /
``_get_unpadded_features`` and ``image_processing_utils.select_best_resolution`` (transformers >= 4.46; 5.23 read).
``(h, w)`` = (height, width).

>>> llava_next_image_tokens(336, 336)
1176
>>> llava_next_image_tokens(480, 640)
2340
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# LLaVA-NeXT v1.6 defaults (llava-hf preprocessor_config.json / LlavaNextConfig; lmms-lab configs use the same).
LLAVA_NEXT_GRID_PINPOINTS: tuple[tuple[int, int], ...] = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))
LLAVA_NEXT_CROP = 336
LLAVA_NEXT_PATCH = 14



def select_best_resolution(height: int, width: int, pinpoints: Sequence[Sequence[int]]) -> tuple[int, int]:
    """The pinpoint (h, w) that keeps the most image pixels, ties broken by the least padding."""
    best: tuple[int, int] | None = None
    best_effective, best_waste = -1, math.inf
    for ph, pw in pinpoints:
        scale = min(pw / width, ph / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        waste = ph * pw - effective
        if effective > best_effective or (effective == best_effective and waste < best_waste):
            best, best_effective, best_waste = (int(ph), int(pw)), effective, waste
    assert best is not None, "no grid pinpoints"
    return best


def llava_next_image_tokens(
    height: int,
    width: int,
    *,
    pinpoints: Sequence[Sequence[int]] = LLAVA_NEXT_GRID_PINPOINTS,
    crop: int = LLAVA_NEXT_CROP,
    patch: int = LLAVA_NEXT_PATCH,
) -> int:
    """LLM positions for one image under anyres + spatial_unpad with one newline per row (CLS dropped)."""
    best_h, best_w = select_best_resolution(height, width, pinpoints)
    side = crop // patch
    cur_h, cur_w = side * (best_h // crop), side * (best_w // crop)
    if width / height > cur_w / cur_h:
        new_h = int(round(height * (cur_w / width), 7))
        cur_h -= 2 * ((cur_h - new_h) // 2)
    else:
        new_w = int(round(width * (cur_h / height), 7))
        cur_w -= 2 * ((cur_w - new_w) // 2)
    return side * side + cur_h * cur_w + cur_h
