"""The toy image processor (imports torch): a 28 x 28 resize and CLIP normalisation -> (N, 3, 28, 28)."""

from __future__ import annotations

from vlmref.datasets.processors import SquareResizeProcessor

from .media import TOY_IMAGE_SIZE, ToyMedia


class ToyImageProcessor(SquareResizeProcessor):
    """Plain square resize to 28 px; each image takes ``ToyMedia.tokens_per_image`` = 4 positions."""

    size = TOY_IMAGE_SIZE
    media_step = ToyMedia
