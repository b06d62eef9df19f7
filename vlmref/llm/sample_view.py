"""The readable view of an encoded sample that ``vlmref sft`` logs as its first training sample.

ms-swift's ``print_example`` lines (``[INPUT_IDS]``, ``[INPUT]``, ``[LABELS_IDS]``, ``[LABELS]``; ms-swift spells the
last two ``LABLES``), with every image span shown as one readable piece instead of its decoded ids. Qwen-VL, one
image (its span is ``<img>`` + 256 path-byte / ``<imgpad>`` ids + ``</img>``)::

    [INPUT_IDS] 151644 8948 198 ... 151857 47 116 109 112 ... [151859 * 241] 151858 74785 419 ...
    [INPUT] <|im_start|>system ... <|im_start|>user
    <img>[image 0: /tmp/cat.png, 256 positions]</img>Describe this image.<|im_end|> ...
    [LABELS_IDS] [-100 * 281] 32 8251 13 151645
    [LABELS] [-100 * 281]A cat.<|im_end|>

CogVLM (vision positions after BOS): ``[INPUT] <s>[image 0: /tmp/cat.png, 1227 positions]Question: ...``; LLaVA-NeXT:
``<s>[INST] [image 0: /tmp/cat.png, 2340 positions]\\nDescribe ...``. Other negative ids (``-100``, an unexpanded
``-200`` marker) are written ``[id * n]``, as are runs of 4+ equal ids in the ids lines. The family data comes from
the template's media step (``span_frame``), the spans and images from the encoded dict (``image_spans``, ``images``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_LONG_REF = 80  # image references longer than this (base64, data URIs) are shortened


@dataclass(frozen=True)
class ImageRun:
    """ids[start:end] are image ``index``'s positions (delimiters excluded)."""

    start: int
    end: int
    index: int
    image: Any = None

    def label(self) -> str:
        n = self.end - self.start
        what = describe_image(self.image)
        return f"[image {self.index}: {what + ', ' if what else ''}{n} positions]"


def describe_image(image: Any) -> str:
    """A short description of an image reference: the path/URL, a shortened base64 or data URI, a PIL image's size."""
    if image is None:
        return ""
    if isinstance(image, str):
        return image if len(image) <= _LONG_REF else f"{image[:40]}... ({len(image)} chars)"
    if isinstance(image, (bytes, bytearray)):
        return f"{len(image)} bytes"
    if isinstance(image, dict):
        return describe_image(image.get("path") or image.get("bytes"))
    size = getattr(image, "size", None)
    if isinstance(size, tuple) and len(size) == 2:
        return f"{type(image).__name__} {size[0]}x{size[1]}"
    return type(image).__name__


def image_runs(encoded: dict[str, Any], template: Any = None) -> list[ImageRun]:
    """The image runs of ``encoded``: its ``image_spans`` without the media step's ``span_frame`` delimiters."""
    head, tail = getattr(getattr(template, "media", None), "span_frame", (0, 0))
    spans = encoded.get("image_spans") or []
    images = list(encoded.get("images") or [])
    if len(images) != len(spans):
        images = [None] * len(spans)
    return [ImageRun(int(s) + head, int(s) + int(n) - tail, k, images[k]) for k, (s, n) in enumerate(spans)]


def safe_decode(tokenizer: Any, ids: list[int], runs: list[ImageRun] | None = None) -> str:
    """Decode ``ids`` with each image run replaced by its label; negative ids are written ``[id * n]`` (ms-swift
    ``safe_tokenizer_decode``). Text between runs is decoded in one piece, so a multi-byte character stays whole."""
    by_start = {r.start: r for r in runs or [] if r.end > r.start}
    out: list[str] = []
    text: list[int] = []

    def flush() -> None:
        if text:
            out.append(tokenizer.decode(text))
            text.clear()

    i = 0
    while i < len(ids):
        run = by_start.get(i)
        if run is not None:
            flush()
            out.append(run.label())
            i = run.end
            continue
        if ids[i] < 0:
            j = i
            while j < len(ids) and ids[j] == ids[i]:
                j += 1
            flush()
            out.append(f"[{ids[i]} * {j - i}]")
            i = j
            continue
        text.append(ids[i])
        i += 1
    flush()
    return "".join(out)


def format_example(tokenizer: Any, encoded: dict[str, Any], template: Any = None) -> str:
    """The four ``print_example`` lines of ``encoded`` (``template``: the one that encoded it, for its media step)."""
    from ..utils import runs_text

    ids = list(encoded["input_ids"])
    lines = [f"[INPUT_IDS] {runs_text(ids)}", f"[INPUT] {safe_decode(tokenizer, ids, image_runs(encoded, template))}"]
    labels = encoded.get("labels")
    if labels is not None:
        lines += [f"[LABELS_IDS] {runs_text(list(labels))}", f"[LABELS] {safe_decode(tokenizer, list(labels))}"]
    return "\n".join(lines)
