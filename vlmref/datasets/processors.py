"""Image processors, one per model family: PIL images in, the tensors each model's vision tower takes out.

``get_image_processor(model_type)`` builds the family's processor from the registry entry (``media_options``);
template types are accepted as well. Every processor is called with a list of RGB PIL images and returns a dict
with ``pixel_values`` (plus ``image_sizes`` for LLaVA-NeXT); ``positions(out)`` says how many LLM positions each
processed image takes, which the collator checks against the template's ``image_spans``.

>>> from PIL import Image
>>> proc = get_image_processor("cogvlm-17b-instruct")
>>> proc([Image.new("RGB", (640, 480))])["pixel_values"].shape
torch.Size([1, 3, 490, 490])

Upstream preprocessing is re-implemented from facts (sizes, filters, mean/std); ``torchvision`` is not needed:
torchvision's ``Resize`` on a PIL image is ``PIL.Image.resize`` with the same filter, and ``ToTensor`` +
``Normalize`` are the two float ops done here in the same order. Torch and numpy are imported only here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..models.model_types import MODELS
from ..templates import TEMPLATES
from ..templates.image_tokens import (
    LLAVA_NEXT_CROP,
    LLAVA_NEXT_GRID_PINPOINTS,
    LLAVA_NEXT_PATCH,
    llava_next_image_tokens,
)

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def to_normalized_tensor(image: Image.Image, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD) -> torch.Tensor:
    """(3, H, W) float32: ``ToTensor`` (uint8 / 255) then ``Normalize`` ((x - mean) / std), torchvision's order."""
    array = np.asarray(rgb(image), dtype=np.uint8)
    x = torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32).div(255)
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return x.sub(m).div(s)


class ImageProcessor:
    """Base class: ``__call__(images) -> {'pixel_values': ...}`` for the images of one sample or a flat batch."""

    family = ""

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, Any]:
        raise NotImplementedError

    def process_batch(self, per_sample: Sequence[Sequence[Image.Image]]) -> dict[str, Any]:
        """All images of a batch, sample by sample, in order. Default: one call on the flattened list."""
        return self([image for images in per_sample for image in images])

    def positions(self, out: dict[str, Any]) -> list[int]:
        """LLM positions each processed image takes in the template's encoding (the length of its image span)."""
        raise NotImplementedError


class _SquareResize(ImageProcessor):
    """Resize to ``size`` x ``size`` (aspect ratio not kept) with ``resample``, then CLIP normalisation."""

    size = 0
    resample = Image.Resampling.BICUBIC
    span = 0  # LLM positions per image

    def prepare(self, image: Image.Image) -> Image.Image:
        return image

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, Any]:
        tensors = [to_normalized_tensor(self.prepare(rgb(im)).resize((self.size, self.size), self.resample)) for im in images]
        empty = torch.empty(0, 3, self.size, self.size)
        return {"pixel_values": torch.stack(tensors) if tensors else empty}

    def positions(self, out: dict[str, Any]) -> list[int]:
        return [self.span] * len(out["pixel_values"])


class CogVLMImageProcessor(_SquareResize):
    """CogVLM-17B chat: 490 x 490, bicubic, OpenAI CLIP mean/std -> (N, 3, 490, 490).

    Source: THUDM/cogvlm-chat-hf ``build_conversation_input_ids`` (``Resize((image_size, image_size), BICUBIC)``,
    ``ToTensor``, ``Normalize(CLIP)``; ``vision_config.image_size`` 490, patch 14) [med-high: verbatim copies of the
    remote code]. Positions: (490 // 14)^2 + boi + eoi = 1227.
    """

    family = "cogvlm"
    size = 490
    span = (490 // 14) ** 2 + 2


class QwenVLImageProcessor(_SquareResize):
    """Qwen-VL-Chat: 448 x 448, bicubic, OpenAI CLIP mean/std -> (N, 3, 448, 448).

    Source: Qwen/Qwen-VL-Chat ``visual.py`` ``VisionTransformer.image_transform`` / ``encode`` (the model loads the
    image from the path in the ids, ``convert('RGB')``, no EXIF transpose) [high: several verbatim copies, e.g. the
    TensorRT-LLM Qwen-VL example]. Positions: ``<img>`` + 256 resampler queries + ``</img>`` = 258.
    """

    family = "qwen_vl"
    size = 448
    span = 258


class XComposer2ImageProcessor(_SquareResize):
    """InternLM-XComposer2-7b: 224 x 224, bicubic, OpenAI CLIP mean/std -> (N, 3, 224, 224).

    Source: ``vis_processor = Compose([Resize((img_size, img_size), BICUBIC), ToTensor(), Normalize(CLIP)])`` of
    modeling_internlm_xcomposer2.py with ``config.img_size`` 224 for internlm-xcomposer2-7b (490 is the -vl-7b)
    [high: HF config quoted in InternLM-XComposer#492, finetune README; lmdeploy ``_preprocess_7b``].
    Positions: (224 // 14)^2 = 256.
    """

    family = "xcomposer2"
    size = 224
    span = (224 // 14) ** 2


def expand2square(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Pad to a square canvas of the long side, the image centred (offset floor((long - short) / 2))."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


class YiVLImageProcessor(_SquareResize):
    """Yi-VL-6B/34B: expand2square on the mean colour (122, 116, 104), then CLIP at 448 -> (N, 3, 448, 448).

    Source: 01-ai/Yi ``VL/single_inference.py`` (``expand2square(image, tuple(int(x * 255) for x in
    image_processor.image_mean))`` when ``image_aspect_ratio == 'pad'``; Yi-VL-6B config.json has ``"pad"``) and
    ms-swift 2.2.0 YiVLTemplate [high]; the ``vit/clip-vit-H-14-...-448`` tower has ``image_size`` 448 (its
    config.json) [high]; its CLIPImageProcessor (shortest_edge 448, centre crop 448, bicubic, OpenAI CLIP
    mean/std) [med: preprocessor_config.json not read; a square 448 resize + crop is a plain resize].
    Positions: (448 // 14)^2 = 1024 (CLS dropped).
    """

    family = "yi_vl"
    size = 448
    span = (448 // 14) ** 2
    background = tuple(int(x * 255) for x in OPENAI_CLIP_MEAN)

    def prepare(self, image: Image.Image) -> Image.Image:
        return expand2square(image, self.background)


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

    family = "xcomposer2_5"
    tile = 560

    def __init__(self, hd_num: int | None = None) -> None:
        self.hd_num = hd_num

    def hd_num_for(self, n_images: int) -> int:
        return self.hd_num if self.hd_num is not None else (24 if n_images <= 1 else 6)

    def transform(self, image: Image.Image, hd_num: int) -> Image.Image:
        image = rgb(image)
        transposed = image.width < image.height
        if transposed:
            image = image.transpose(Image.Transpose.TRANSPOSE)
        width, height = image.size
        ratio = width / height
        scale = 1
        while scale * math.ceil(scale / ratio) <= hd_num:
            scale += 1
        scale = min(math.ceil(width / self.tile), scale - 1)
        new_w = scale * self.tile
        new_h = int(new_w / ratio)
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
        # global 20x20 view + a newline per row, one separator, the tiles + a newline per tile row (build_mlp)
        return [(r * c + 1) * 400 + 1 + (r + 1) * 20 for r, c in map(self.grid, out["pixel_values"])]


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

    family = "llava_next"

    def __init__(self, pinpoints: Sequence[Sequence[int]] = LLAVA_NEXT_GRID_PINPOINTS) -> None:
        self.pinpoints = [[int(h), int(w)] for h, w in pinpoints]
        self._hf = None

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
        return [
            llava_next_image_tokens(int(h), int(w), pinpoints=self.pinpoints, crop=LLAVA_NEXT_CROP, patch=LLAVA_NEXT_PATCH)
            for h, w in out["image_sizes"].tolist()
        ]


PROCESSORS: dict[str, type[ImageProcessor]] = {
    cls.family: cls
    for cls in (
        CogVLMImageProcessor,
        QwenVLImageProcessor,
        XComposer2ImageProcessor,
        XComposer2_5ImageProcessor,
        YiVLImageProcessor,
        LlavaNextImageProcessor,
    )
}


def resolve_media(name: str) -> tuple[str, str, dict[str, Any]]:
    """(template_type, media family, media_options) for a model type (or alias) or a template type."""
    if name in MODELS:
        meta = MODELS.get(name)
        return meta.template, TEMPLATES.get(meta.template).media, dict(meta.media_options)
    if name in TEMPLATES:
        meta = TEMPLATES.get(name)
        return meta.template_type, meta.media, {}
    raise KeyError(f"unknown model type or template type {name!r}")


def get_image_processor(model_type: str, **overrides: Any) -> ImageProcessor:
    """The image processor of ``model_type`` (or template type), configured from its registry ``media_options``.

    ``overrides`` replace media options (``hd_num`` for xcomposer2_5, ``image_grid_pinpoints`` for LLaVA-NeXT).

    >>> type(get_image_processor("llava1_6-mistral-7b-instruct")).__name__
    'LlavaNextImageProcessor'
    """
    _, family, options = resolve_media(model_type)
    options.update(overrides)
    if family not in PROCESSORS:
        raise KeyError(f"{model_type!r} (media {family!r}) takes no images; no image processor")
    if family == "llava_next":
        return LlavaNextImageProcessor(options.get("image_grid_pinpoints", LLAVA_NEXT_GRID_PINPOINTS))
    if family == "xcomposer2_5":
        return XComposer2_5ImageProcessor(options.get("hd_num"))
    return PROCESSORS[family]()
