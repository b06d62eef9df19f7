"""Qwen-VL's image processor (imports torch)."""

from __future__ import annotations

from ...datasets.processors import SquareResizeProcessor
from .media import QwenVLMedia


class QwenVLImageProcessor(SquareResizeProcessor):
    """Qwen-VL-Chat: 448 x 448, bicubic, OpenAI CLIP mean/std -> (N, 3, 448, 448).

    Source: Qwen/Qwen-VL-Chat ``visual.py`` ``VisionTransformer.image_transform`` / ``encode`` (the model loads the
    image from the path in the ids, ``convert('RGB')``, no EXIF transpose) [high: several verbatim copies, e.g. the
    TensorRT-LLM Qwen-VL example]. Positions: ``<img>`` + 256 resampler queries + ``</img>`` = 258.
    """

    size = 448
    media_step = QwenVLMedia
