"""Yi-VL's image processor (imports torch)."""

from __future__ import annotations

from PIL import Image

from ...datasets.processors import OPENAI_CLIP_MEAN, SquareResizeProcessor, expand2square
from .media import YiVLMedia


class YiVLImageProcessor(SquareResizeProcessor):
    """Yi-VL-6B/34B: expand2square on the mean colour (122, 116, 104), then CLIP at 448 -> (N, 3, 448, 448).

    Source: 01-ai/Yi ``VL/single_inference.py`` (``expand2square(image, tuple(int(x * 255) for x in
    image_processor.image_mean))`` when ``image_aspect_ratio == 'pad'``; Yi-VL-6B config.json has ``"pad"``) and
    ms-swift 2.2.0 YiVLTemplate [high]; the ``vit/clip-vit-H-14-...-448`` tower has ``image_size`` 448 (its
    config.json) [high]; its CLIPImageProcessor (shortest_edge 448, centre crop 448, bicubic, OpenAI CLIP
    mean/std) [med: preprocessor_config.json not read; a square 448 resize + crop is a plain resize].
    Positions: (448 // 14)^2 = 1024 (CLS dropped).
    """

    size = 448
    media_step = YiVLMedia
    background = tuple(int(x * 255) for x in OPENAI_CLIP_MEAN)

    def prepare(self, image: Image.Image) -> Image.Image:
        return expand2square(image, self.background)
