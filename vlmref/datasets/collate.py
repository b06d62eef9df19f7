"""Batch collation: ``Template.encode`` outputs -> padded tensors plus the batch's processed images.

>>> collator = DataCollator("llava1d6-mistral-7b-instruct", tokenizer)  # doctest: +SKIP
>>> batch = collator([template.encode(ex) for ex in examples])  # doctest: +SKIP
>>> sorted(batch)  # doctest: +SKIP
['attention_mask', 'image_sizes', 'images_per_sample', 'input_ids', 'labels', 'pixel_values']

Keys (ms-swift 2.2.0 ``Template.data_collator`` semantics, template.py L603-679, plus the family extras):

* ``input_ids`` padded with the pad id, ``attention_mask`` 1/0, ``labels`` padded with -100 (absent when every
  sample is a generation prompt; a batch mixing both is refused). ``padding_side='right'`` (training, as
  ms-swift) or ``'left'`` (batched generation).
* ``token_type_ids`` (cogvlm, pad 0) and ``im_mask`` (xcomposer2/2.5, bool, pad False).
* ``pixel_values``: every reference of ``sample['images']`` (path, URL, base64, PIL image) loaded with
  ``vlmref.datasets.images.load_image(ref, base_dir=media_root)`` (EXIF upright, RGB, alpha over white: the same
  size the template's ``image_hw`` measured), processed by the family's processor and concatenated in batch
  order: a tensor (N, ...) or, for xcomposer2_5, a list of N (3, H, W) tensors. ``images_per_sample`` (LongTensor (B,)) splits them per row. LLaVA-NeXT adds ``image_sizes``
  (LongTensor (N, 2), height then width). A batch without images has none of these keys.

Mixed batches (rows with and without images): supported for qwen-vl, xcomposer2/2.5, yi-vl and LLaVA-NeXT:
text-only rows simply contribute 0 to ``images_per_sample`` (ms-swift 2.2.0 refuses them for yi-vl and the
lmms-lab LLaVA-NeXT models with an assertion; vlmref lets the model split ``pixel_values`` instead). CogVLM is
refused: its model needs exactly one image per conversation (``build_conversation_input_ids``; the 2.2.0
collator raises ``KeyError``), so any row without an image raises ``ImageRequiredError`` naming its position.

Checks, each naming the batch position: ids/labels (and token extras) of one length; as many image spans as
images; each span as long as the processed image needs (``ImageProcessor.positions``), which catches an image
that changed size between encode and collate or media options that differ between template and processor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from PIL import Image

from ..errors import VlmrefError
from ..templates.media import get_media_step
from .processors import ImageProcessor, get_image_processor, has_image_processor, resolve_media

# token-aligned extras the templates emit: key -> (pad value, dtype)
TOKEN_EXTRAS: dict[str, tuple[Any, torch.dtype]] = {"token_type_ids": (0, torch.long), "im_mask": (False, torch.bool)}


class CollateError(VlmrefError, ValueError):
    """A batch cannot be collated; the message names the batch position (``batch[i]``)."""


class ImageRequiredError(CollateError):
    """A row without an image in a batch for a model that needs an image in every row (cogvlm)."""

    def __init__(self, model_type: str, position: int, reason: str) -> None:
        self.model_type = model_type
        self.position = position
        super().__init__(f"[{model_type}] batch[{position}] has no image: {reason}; filter text-only rows out")


def _default_loader() -> Callable[..., Image.Image]:
    from .images import load_image  # written alongside; imported on first use

    return load_image


class DataCollator:
    """Pads encoded samples into tensors and processes their images (see the module docstring).

    ``model_type`` is a model type (or alias) or a template type; the pad id is ``pad_token_id`` if given, else
    ``tokenizer.pad_token_id``, else ``tokenizer.eos_token_id``. ``image_processor`` defaults to the family's
    (``get_image_processor``), built on first use; ``image_loader(ref, base_dir=...)`` defaults to
    ``vlmref.datasets.images.load_image`` (pass ``functools.partial(load_image, options=ImageOptions(...))`` for
    download limits).

    >>> collate = DataCollator("qwen-vl-chat", pad_token_id=151645, padding_side="left")
    >>> collate([{"input_ids": [1, 2], "labels": None}, {"input_ids": [3], "labels": None}])["input_ids"].tolist()
    [[1, 2], [151645, 3]]
    """

    def __init__(
        self,
        model_type: str,
        tokenizer: Any = None,
        *,
        pad_token_id: int | None = None,
        padding_side: Literal["right", "left"] = "right",
        image_processor: ImageProcessor | None = None,
        media_root: str | None = None,
        image_loader: Callable[..., Image.Image] | None = None,
    ) -> None:
        self.model_type = model_type
        self.template_type, self.family, _ = resolve_media(model_type)
        if pad_token_id is None and tokenizer is not None:
            pad_token_id = getattr(tokenizer, "pad_token_id", None)
            if pad_token_id is None:
                pad_token_id = getattr(tokenizer, "eos_token_id", None)
        if pad_token_id is None:
            raise ValueError("no pad id: pass pad_token_id or a tokenizer with a pad or eos token")
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.pad_token_id = int(pad_token_id)
        self.padding_side = padding_side
        self.media_root = media_root
        self.image_loader = image_loader
        self._processor = image_processor

    @property
    def image_processor(self) -> ImageProcessor:
        if self._processor is None:
            self._processor = get_image_processor(self.model_type)
        return self._processor

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        if not batch:
            raise CollateError(f"[{self.model_type}] empty batch")
        for i, sample in enumerate(batch):
            self._check_sample(i, sample)
        out: dict[str, Any] = {
            "input_ids": self._pad([s["input_ids"] for s in batch], self.pad_token_id, torch.long),
            "attention_mask": self._pad([[1] * len(s["input_ids"]) for s in batch], 0, torch.long),
        }
        has_labels = [s.get("labels") is not None for s in batch]
        if any(has_labels) and not all(has_labels):
            raise CollateError(
                f"[{self.model_type}] batch{[i for i, h in enumerate(has_labels) if not h]} has labels None "
                "(generation prompts) while other rows have labels; do not mix training and generation samples"
            )
        if all(has_labels):
            out["labels"] = self._pad([s["labels"] for s in batch], -100, torch.long)
        for key, (fill, dtype) in TOKEN_EXTRAS.items():
            present = [key in s for s in batch]
            if not any(present):
                continue
            if not all(present):
                missing = [i for i, p in enumerate(present) if not p]
                raise CollateError(f"[{self.model_type}] batch{missing} lack {key!r} that other rows have")
            out[key] = self._pad([s[key] for s in batch], fill, dtype)
        out.update(self._collate_images(batch))
        return out

    # ---- steps ------------------------------------------------------------------------------------------------
    def _check_sample(self, i: int, sample: dict[str, Any]) -> None:
        where = f"[{self.model_type}] batch[{i}]"
        if "input_ids" not in sample:
            raise CollateError(f"{where}: no 'input_ids' (an encode result from Template.encode is expected)")
        n = len(sample["input_ids"])
        if n == 0:
            raise CollateError(f"{where}: empty input_ids")
        for key in ("labels", *TOKEN_EXTRAS):
            value = sample.get(key)
            if value is not None and len(value) != n:
                raise CollateError(f"{where}: {key} has {len(value)} entries but input_ids has {n}")
        spans, images = sample.get("image_spans") or [], sample.get("images") or []
        if len(spans) != len(images):
            raise CollateError(f"{where}: {len(spans)} image placeholder span(s) but {len(images)} image(s)")
        for start, length in spans:
            if start < 0 or start + length > n:
                raise CollateError(f"{where}: image span ({start}, {length}) outside the {n} positions")

    def _pad(self, rows: list[Sequence[Any]], fill: Any, dtype: torch.dtype) -> torch.Tensor:
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), fill, dtype=dtype)
        for b, row in enumerate(rows):
            values = torch.as_tensor(list(row), dtype=dtype)
            if self.padding_side == "right":
                out[b, : len(row)] = values
            else:
                out[b, width - len(row) :] = values
        return out

    def _load(self, ref: Any) -> Image.Image:
        loader = self.image_loader or _default_loader()
        return loader(ref, base_dir=self.media_root)

    def _collate_images(self, batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        refs = [list(s.get("images") or []) for s in batch]
        required = get_media_step(self.family).image_required  # why the model refuses a row without an image
        if required:
            for i, r in enumerate(refs):
                if not r:
                    raise ImageRequiredError(self.model_type, i, required)
        if not any(refs):
            return {}
        if self._processor is None and not has_image_processor(self.model_type):
            i = next(i for i, r in enumerate(refs) if r)
            raise CollateError(f"[{self.model_type}] batch[{i}] has images but template {self.template_type!r} takes none")
        per_sample = [[self._load(ref) for ref in r] for r in refs]
        if any("hd_num" in s for s in batch):
            out = self.image_processor.process_batch(per_sample, hd_nums=[s.get("hd_num") for s in batch])
        else:
            out = self.image_processor.process_batch(per_sample)
        self._check_positions(batch, refs, self.image_processor.positions(out))
        out["images_per_sample"] = torch.tensor([len(r) for r in refs], dtype=torch.long)
        return out

    def _check_positions(self, batch, refs: list[list[Any]], positions: list[int]) -> None:
        k = 0
        for i, sample in enumerate(batch):
            for j, (_, reserved) in enumerate(sample.get("image_spans") or []):
                needed = positions[k]
                k += 1
                if reserved != needed:
                    raise CollateError(
                        f"[{self.model_type}] batch[{i}] image {j} ({refs[i][j]!r}): the template reserved {reserved} "
                        f"positions but the processed image needs {needed} (image size changed since encode, e.g. "
                        "EXIF rotation, or template media options differ from the processor's)"
                    )
