"""LLaVA-NeXT's image processor (transformers' anyres processor; imports torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from ...datasets.processors import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ImageProcessor
from .image_tokens import LLAVA_NEXT_CROP, LLAVA_NEXT_GRID_PINPOINTS
from .media import LlavaNextMedia


class LlavaNextImageProcessor(ImageProcessor):
    """LLaVA-NeXT anyres via transformers' ``LlavaNextImageProcessor`` (PIL backend) configured like the llava-hf
    ``preprocessor_config.json``: shortest_edge 336, crop 336, bicubic, OpenAI CLIP mean/std, the 5 pinpoints,
    ``do_pad`` -> ``pixel_values`` (N, max_patches, 3, 336, 336) (zero patches pad each image to the batch's
    largest grid) and ``image_sizes`` (N, 2) LongTensor as (height, width).

    Per image: a 336 x 336 squash-resized full view, then the image resized into the best pinpoint (aspect kept,
    ceil rounding), centred on black, cut into 336-px patches. Source: transformers 5.23
    ``image_processing_pil_llava_next.py`` [high, read]; llava-hf/llava-v1.6-mistral-7b-hf preprocessor_config
    [med-high]. Used for all five LLaVA-NeXT model types.

    lmms-lab original (LLaVA-NeXT ``mm_utils.process_anyres_image``, read): same pixels (squash-resized base view,
    ``resize_and_pad_image`` with ceil and black centring, CLIP per patch), except two points. (1) Pinpoints are
    read as (width, height) there and (height, width) here; the list is symmetric, so the same canvases compete,
    but an exact tie (only images with both sides <= 336 px) picks the first listed: 2 rows x 1 column there,
    1 row x 2 columns here, which changes the count for non-square small images. (2) ms-swift passes
    ``image_sizes`` as PIL (width, height) to the original code. vlmref follows transformers throughout, as the
    templates' ``llava_next_image_tokens`` does; a model adapter for the original code must flip ``image_sizes``.
    """

    def __init__(self, pinpoints: Sequence[Sequence[int]] = LLAVA_NEXT_GRID_PINPOINTS) -> None:
        super().__init__({"image_grid_pinpoints": pinpoints})
        self.pinpoints = [[int(h), int(w)] for h, w in pinpoints]
        self._hf = None

    @classmethod
    def from_options(cls, options):
        return cls(options.get("image_grid_pinpoints", LLAVA_NEXT_GRID_PINPOINTS))

    @property
    def hf(self):
        if self._hf is None:
            try:  # transformers >= 5 without torchvision
                from transformers.models.llava_next.image_processing_pil_llava_next import (
                    LlavaNextImageProcessorPil as cls,
                )
            except ImportError:  # transformers 4.x
                from transformers import LlavaNextImageProcessor as cls
            self._hf = cls(
                size={"shortest_edge": LLAVA_NEXT_CROP},
                crop_size={"height": LLAVA_NEXT_CROP, "width": LLAVA_NEXT_CROP},
                image_grid_pinpoints=self.pinpoints,
                resample=Image.Resampling.BICUBIC,
                do_resize=True,
                do_center_crop=True,
                do_rescale=True,
                rescale_factor=1 / 255,
                do_normalize=True,
                image_mean=list(OPENAI_CLIP_MEAN),
                image_std=list(OPENAI_CLIP_STD),
                do_pad=True,
                do_convert_rgb=True,
            )
        return self._hf

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, Any]:
        if not images:
            return {"pixel_values": torch.empty(0, 1, 3, LLAVA_NEXT_CROP, LLAVA_NEXT_CROP),
                    "image_sizes": torch.empty(0, 2, dtype=torch.long)}
        out = self.hf(list(images), return_tensors="pt")
        return {"pixel_values": out["pixel_values"].to(torch.float32), "image_sizes": out["image_sizes"].to(torch.long)}

    def positions(self, out: dict[str, Any]) -> list[int]:
        return [LlavaNextMedia.tokens_per_image(int(h), int(w), {"image_grid_pinpoints": self.pinpoints})
                for h, w in out["image_sizes"].tolist()]
