"""InternLM-XComposer2 / 2.5 image processors (import torch)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from ...datasets.processors import ImageProcessor, SquareResizeProcessor, rgb, to_normalized_tensor
from .image_tokens import XCOMPOSER2_5_TILE, xcomposer2_5_positions, xcomposer2_5_resized
from .media import XComposer2_5Media, XComposer2Media


class XComposer2ImageProcessor(SquareResizeProcessor):
    """InternLM-XComposer2-7b: 224 x 224, bicubic, OpenAI CLIP mean/std -> (N, 3, 224, 224).

    Source: ``vis_processor = Compose([Resize((img_size, img_size), BICUBIC), ToTensor(), Normalize(CLIP)])`` of
    modeling_internlm_xcomposer2.py with ``config.img_size`` 224 for internlm-xcomposer2-7b (490 is the -vl-7b)
    [high: HF config quoted in InternLM-XComposer#492, finetune README; lmdeploy ``_preprocess_7b``].
    Positions: (224 // 14)^2 = 256.
    """

    size = 224
    media_step = XComposer2Media



class XComposer2_5ImageProcessor(ImageProcessor):
    """InternLM-XComposer-2.5: HD tiling to 560-px tiles, white bottom padding -> a list of (3, H, W) tensors.

    ``hd_num`` (max tiles) is 24 for a sample with one image and 6 for several (ms-swift 2.2.1 template; the
    ``hd_num`` media option overrides). Steps (IXC-2.5 ``ixc_utils.Image_transform`` + ``padding_336(img, 560)``,
    then ``vis_processor`` = ``ToTensor`` + ``Normalize(CLIP)``) [med-high: copies of the HF remote code]:
    portrait images are transposed first; ``scale`` = largest s with s * ceil(s / ratio) <= hd_num, capped at
    ceil(width / 560); resize to (scale * 560, int(scale * 560 / ratio)) with torchvision's default (bilinear);
    pad the bottom with white to a multiple of 560; transpose back. H, W are multiples of 560 (rows = H / 560,
    cols = W / 560). The global 560 x 560 view is made inside the model (``build_mlp``), not here.

    >>> proc = XComposer2_5ImageProcessor()
    >>> [tuple(t.shape) for t in proc([Image.new("RGB", (640, 480))])["pixel_values"]]
    [(3, 1120, 1120)]
    """

    tile = XCOMPOSER2_5_TILE

    def __init__(self, hd_num: int | None = None) -> None:
        super().__init__({} if hd_num is None else {"hd_num": hd_num})
        self.hd_num = hd_num

    @classmethod
    def from_options(cls, options):
        return cls(options.get("hd_num"))

    def hd_num_for(self, n_images: int) -> int:
        return self.hd_num if self.hd_num is not None else XComposer2_5Media.hd_num({}, n_images)

    def transform(self, image: Image.Image, hd_num: int) -> Image.Image:
        image = rgb(image)
        transposed = image.width < image.height
        if transposed:
            image = image.transpose(Image.Transpose.TRANSPOSE)
        new_w, new_h = xcomposer2_5_resized(*image.size, hd_num)
        if new_h < 1:
            raise ValueError(f"image {image.size} is too elongated for HD tiling (resized height {new_h})")
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
        padded = Image.new("RGB", (new_w, math.ceil(new_h / self.tile) * self.tile), (255, 255, 255))
        padded.paste(image, (0, 0))
        return padded.transpose(Image.Transpose.TRANSPOSE) if transposed else padded

    def __call__(self, images: Sequence[Image.Image], *, hd_num: int | None = None) -> dict[str, Any]:
        """The images of ONE sample (their count sets ``hd_num`` unless given)."""
        hd = hd_num if hd_num is not None else self.hd_num_for(len(images))
        return {"pixel_values": [to_normalized_tensor(self.transform(im, hd)) for im in images]}

    def process_batch(
        self, per_sample: Sequence[Sequence[Image.Image]], hd_nums: Sequence[Sequence[int] | None] | None = None
    ) -> dict[str, Any]:
        """Each sample on its own; the lists are concatenated. ``hd_nums[i]`` (the template's ``hd_num`` extra, one per
        image) wins over the image count, so a sample that lost images to ``truncation_left`` keeps its tiling."""
        out = []
        for i, images in enumerate(per_sample):
            given = hd_nums[i] if hd_nums is not None else None
            if given:
                out += [to_normalized_tensor(self.transform(im, int(h))) for im, h in zip(images, given, strict=True)]
            else:
                out += self(images)["pixel_values"]
        return {"pixel_values": out}

    def grid(self, tensor: torch.Tensor) -> tuple[int, int]:
        """(rows, cols) of 560-px tiles of one processed image."""
        return tensor.shape[-2] // self.tile, tensor.shape[-1] // self.tile

    def positions(self, out: dict[str, Any]) -> list[int]:
        return [xcomposer2_5_positions(r, c) for r, c in map(self.grid, out["pixel_values"])]
