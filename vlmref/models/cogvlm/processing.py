"""CogVLM's image processor (imports torch)."""

from __future__ import annotations

from ...datasets.processors import SquareResizeProcessor
from .media import CogVLMMedia


class CogVLMImageProcessor(SquareResizeProcessor):
    """CogVLM-17B chat: 490 x 490, bicubic, OpenAI CLIP mean/std -> (N, 3, 490, 490).

    Source: THUDM/cogvlm-chat-hf ``build_conversation_input_ids`` (``Resize((image_size, image_size), BICUBIC)``,
    ``ToTensor``, ``Normalize(CLIP)``; ``vision_config.image_size`` 490, patch 14) [med-high: verbatim copies of the
    remote code]. Positions: (490 // 14)^2 + boi + eoi = 1227.
    """

    size = 490
    media_step = CogVLMMedia
