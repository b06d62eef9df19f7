"""Image-token arithmetic: LLaVA-NeXT anyres (transformers' LlavaNextProcessor) and InternLM-XComposer2.5 HD tiling."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vlmref.models.internlm_xcomposer2.image_tokens import xcomposer2_5_grid, xcomposer2_5_image_tokens
from vlmref.models.llava_next.image_tokens import (
    LLAVA_NEXT_GRID_PINPOINTS,
    llava_next_image_tokens,
    select_best_resolution,
)

BASE = (336 // 14) ** 2  # 576: the base (global) view, CLS dropped
MAX_ANYRES = BASE + 48 * 48 + 48  # 672x672 pinpoint: 2x2 tiles of 24x24 patches plus one newline per row


# (height, width) -> count, from re-running transformers' _get_number_of_features arithmetic (architectures.md 2.5).
@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (336, 336, 1176),
        (427, 640, 2144),
        (480, 640, 2340),
        (899, 1024, 2634),
        (672, 672, 2928),
        (1024, 1024, 2928),
        (2000, 1000, 1776),
        (1000, 3000, 2328),
    ],
)
def test_llava_next_anyres_counts(height: int, width: int, expected: int) -> None:
    assert llava_next_image_tokens(height, width) == expected


def test_llava_next_arguments_are_height_then_width() -> None:
    # A landscape and a portrait image of the same pixels pick transposed pinpoints and different counts.
    assert select_best_resolution(1000, 3000, LLAVA_NEXT_GRID_PINPOINTS) == (336, 1008)
    assert select_best_resolution(3000, 1000, LLAVA_NEXT_GRID_PINPOINTS) == (1008, 336)
    assert select_best_resolution(2000, 1000, LLAVA_NEXT_GRID_PINPOINTS) == (672, 336)


def test_select_best_resolution_prefers_less_padding_on_ties() -> None:
    # 336x336 fits every pinpoint without downscaling (same effective pixels): the smallest canvas wins.
    assert select_best_resolution(336, 336, LLAVA_NEXT_GRID_PINPOINTS) in ((336, 672), (672, 336))
    assert select_best_resolution(336, 336, [(672, 672), (336, 672)]) == (336, 672)


def test_llava_next_custom_pinpoints_are_used() -> None:
    # With only a 336x336 pinpoint: 24x24 unpadded + 24 newlines on top of the base view.
    assert llava_next_image_tokens(336, 336, pinpoints=[(336, 336)]) == BASE + 24 * 24 + 24


# Aspect ratios up to 1:20 (beyond ~1:48 the unpadded grid collapses to zero rows and only the base view is left).
_side = st.integers(min_value=16, max_value=4096)


@given(h=_side, w=_side)
def test_llava_next_count_bounds_and_pinpoint(h: int, w: int) -> None:
    if max(h, w) > 20 * min(h, w):
        return
    best = select_best_resolution(h, w, LLAVA_NEXT_GRID_PINPOINTS)
    assert best in LLAVA_NEXT_GRID_PINPOINTS
    n = llava_next_image_tokens(h, w)
    assert BASE + 24 <= n <= MAX_ANYRES


@given(h=st.integers(1, 5000), w=st.integers(1, 5000))
def test_select_best_resolution_returns_a_pinpoint(h: int, w: int) -> None:
    assert select_best_resolution(h, w, LLAVA_NEXT_GRID_PINPOINTS) in LLAVA_NEXT_GRID_PINPOINTS


# ---- InternLM-XComposer2.5 -------------------------------------------------------------------------------------


def _ixc_formula(rows: int, cols: int) -> int:
    # lmdeploy: n_token_per_image = (h * w + 1) * 400 + 1 + (h + 1) * 20 with h = rows, w = cols of 560-px tiles
    return (rows * cols + 1) * 400 + 1 + (rows + 1) * 20


@pytest.mark.parametrize(
    ("height", "width", "grid", "expected"),
    [
        (480, 640, (2, 2), 2061),
        (427, 640, (2, 2), 2061),
        (336, 336, (1, 1), 841),
        (1000, 3000, (2, 6), 5261),  # a 3000-wide, 1000-high image: 2 rows x 6 columns
    ],
)
def test_xcomposer2_5_counts(height: int, width: int, grid: tuple[int, int], expected: int) -> None:
    assert xcomposer2_5_grid(height, width, 24) == grid
    assert xcomposer2_5_image_tokens(height, width, hd_num=24) == expected
    assert _ixc_formula(*grid) == expected


def test_xcomposer2_5_hd_num_limits_tiles() -> None:
    rows, cols = xcomposer2_5_grid(4000, 4000, 6)
    assert rows * cols <= 6
    rows24, cols24 = xcomposer2_5_grid(4000, 4000, 24)
    assert rows24 * cols24 > rows * cols


@given(h=st.integers(16, 6000), w=st.integers(16, 6000), hd=st.sampled_from([1, 6, 9, 16, 18, 24, 25]))
def test_xcomposer2_5_grid_transposes_and_formula(h: int, w: int, hd: int) -> None:
    if max(h, w) > 50 * min(h, w):  # a 1-px-high strip resizes to 0 rows upstream (torchvision refuses it)
        return
    rows, cols = xcomposer2_5_grid(h, w, hd)
    # Image_transform transposes portrait images, tiles, and transposes back: the grid of (w, h) is the transpose.
    assert xcomposer2_5_grid(w, h, hd) == (cols, rows)
    assert rows >= 1 and cols >= 1
    # the long side gets at most ceil(long / 560) tiles (no upscaling past that)
    long_tiles = cols if w >= h else rows
    assert long_tiles <= max(1, math.ceil(max(h, w) / 560))
    n = xcomposer2_5_image_tokens(h, w, hd_num=hd)
    assert n == _ixc_formula(rows, cols)
    # The count is symmetric except for the one newline (20 positions) per tile row of the global + tile views.
    assert n - xcomposer2_5_image_tokens(w, h, hd_num=hd) == (rows - cols) * 20
