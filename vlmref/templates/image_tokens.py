"""How many LLM positions one image takes, per family: pure functions of the image size and processor config.

Sources (facts, re-derived here):

* LLaVA-NeXT anyres: transformers ``LlavaNextProcessor._get_number_of_features`` / ``_get_unpadded_features`` and
  ``image_processing_utils.select_best_resolution`` (transformers >= 4.46; 5.23 read). ``(h, w)`` = (height, width).
  >>> llava_next_image_tokens(336, 336)
  1176
  >>> llava_next_image_tokens(480, 640)
  2340
* InternLM-XComposer2.5 HD: ``ixc_utils.Image_transform`` (560-px tiles, bottom/right padding) and
  ``build_mlp.CLIPVisionTower.forward`` (400 tokens per tile, ``sub_GN`` per row, one ``glb_GN``).
  >>> xcomposer2_5_image_tokens(480, 640, hd_num=24)
  2061
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


def xcomposer2_5_grid(height: int, width: int, hd_num: int) -> tuple[int, int]:
    """(rows, cols) of 560-px tiles after IXC-2.5's ``Image_transform`` (resize then pad to multiples of 560)."""
    transposed = width < height
    if transposed:
        height, width = width, height
    ratio = width / height
    scale = 1
    while scale * math.ceil(scale / ratio) <= hd_num:
        scale += 1
    scale = min(math.ceil(width / 560), scale - 1)
    new_w = int(scale * 560)
    new_h = int(new_w / ratio)
    rows, cols = math.ceil(new_h / 560), new_w // 560
    return (cols, rows) if transposed else (rows, cols)


def xcomposer2_5_image_tokens(height: int, width: int, *, hd_num: int = 24) -> int:
    """Global 20x20 view (+ a newline per row), one separator, then the tiles (+ a newline per tile row)."""
    rows, cols = xcomposer2_5_grid(height, width, hd_num)
    return (rows * cols + 1) * 400 + 1 + (rows + 1) * 20
