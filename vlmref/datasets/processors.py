"""Image processors: PIL images in, the tensors each model's vision tower takes out. This module holds the base
classes; each family's processor is in its package (``vlmref/models/<family>/processing.py``), named by its
``FamilySpec.image_processors``.

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
``Normalize`` are the two float ops done here in the same order. Torch and numpy are imported only by processors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..models.family import image_processor_class
from ..models.model_types import MODELS
from ..templates import TEMPLATES
from ..templates.media import MediaStep

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
    """Base class: ``__call__(images) -> {'pixel_values': ...}`` for the images of one sample or a flat batch.

    ``options`` are the model type's ``media_options`` (``from_options`` builds a processor from them)."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ImageProcessor:
        return cls(options)

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, Any]:
        raise NotImplementedError

    def process_batch(self, per_sample: Sequence[Sequence[Image.Image]]) -> dict[str, Any]:
        """All images of a batch, sample by sample, in order. Default: one call on the flattened list."""
        return self([image for images in per_sample for image in images])

    def positions(self, out: dict[str, Any]) -> list[int]:
        """LLM positions each processed image takes in the template's encoding (the length of its image span)."""
        raise NotImplementedError


class SquareResizeProcessor(ImageProcessor):
    """Resize to ``size`` x ``size`` (aspect ratio not kept) with ``resample``, then CLIP normalisation; each image
    takes ``media_step.tokens_per_image`` positions (the count the template uses)."""

    size = 0
    resample = Image.Resampling.BICUBIC
    media_step: type[MediaStep] = MediaStep

    @property
    def span(self) -> int:
        """LLM positions per image."""
        return self.media_step.tokens_per_image(self.size, self.size, self.options)

    def prepare(self, image: Image.Image) -> Image.Image:
        return image

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, Any]:
        tensors = [to_normalized_tensor(self.prepare(rgb(im)).resize((self.size, self.size), self.resample)) for im in images]
        empty = torch.empty(0, 3, self.size, self.size)
        return {"pixel_values": torch.stack(tensors) if tensors else empty}

    def positions(self, out: dict[str, Any]) -> list[int]:
        return [self.span] * len(out["pixel_values"])


def expand2square(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Pad to a square canvas of the long side, the image centred (offset floor((long - short) / 2))."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def resolve_media(name: str) -> tuple[str, str, dict[str, Any]]:
    """(template_type, media step name, media_options) for a model type (or alias) or a template type."""
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
    _, media, options = resolve_media(model_type)
    options.update(overrides)
    cls = image_processor_class(media)
    if cls is None:
        raise KeyError(f"{model_type!r} (media {media!r}) takes no images; no image processor")
    return cls.from_options(options)


def has_image_processor(model_type: str) -> bool:
    """Whether ``model_type`` (or template type) takes images through an image processor."""
    return image_processor_class(resolve_media(model_type)[1]) is not None
