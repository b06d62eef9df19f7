"""How many LLM positions one InternLM-XComposer2.5 image takes: a pure function of the image size and ``hd_num``.

Source (facts, re-derived here): ``ixc_utils.Image_transform`` (560-px tiles, bottom/right padding) and
``build_mlp.CLIPVisionTower.forward`` (400 tokens per tile, ``sub_GN`` per row, one ``glb_GN``).

>>> xcomposer2_5_image_tokens(480, 640, hd_num=24)
2061
"""

from __future__ import annotations

import math

XCOMPOSER2_5_TILE = 560


def xcomposer2_5_resized(width: int, height: int, hd_num: int) -> tuple[int, int]:
    """(width, height) ``Image_transform`` resizes a landscape or square image to, before the white padding: the
    largest ``scale`` with scale * ceil(scale / ratio) <= hd_num, capped at ceil(width / 560), gives the width
    scale * 560; the height keeps the aspect ratio (``int``)."""
    ratio = width / height
    scale = 1
    while scale * math.ceil(scale / ratio) <= hd_num:
        scale += 1
    scale = min(math.ceil(width / XCOMPOSER2_5_TILE), scale - 1)
    new_w = int(scale * XCOMPOSER2_5_TILE)
    return new_w, int(new_w / ratio)


def xcomposer2_5_grid(height: int, width: int, hd_num: int) -> tuple[int, int]:
    """(rows, cols) of 560-px tiles after IXC-2.5's ``Image_transform`` (resize then pad to multiples of 560)."""
    transposed = width < height
    if transposed:
        height, width = width, height
    new_w, new_h = xcomposer2_5_resized(width, height, hd_num)
    rows, cols = math.ceil(new_h / XCOMPOSER2_5_TILE), new_w // XCOMPOSER2_5_TILE
    return (cols, rows) if transposed else (rows, cols)


def xcomposer2_5_image_tokens(height: int, width: int, *, hd_num: int = 24) -> int:
    """Global 20x20 view (+ a newline per row), one separator, then the tiles (+ a newline per tile row)."""
    return xcomposer2_5_positions(*xcomposer2_5_grid(height, width, hd_num))


def xcomposer2_5_positions(rows: int, cols: int) -> int:
    """Positions of an image cut into ``rows`` x ``cols`` tiles: the global 20x20 view + a newline per row, one
    separator, the tiles + a newline per tile row (``build_mlp``)."""
    return (rows * cols + 1) * 400 + 1 + (rows + 1) * 20
