"""Normalise an encoding's image runs and compare two encodings token by token.

Frameworks place images differently: one placeholder id per image that the model expands (ms-swift 2.2.0's LLaVA),
one id per image position (vlmref, transformers' processors), ``<img>path</img>`` with padding (Qwen-VL), vision
positions marked by ``token_type_ids`` (CogVLM). Both sides are normalised the same way before comparing: every image
run becomes one ``<image>`` item (its length kept aside). A run is

* the encoding's own ``image_spans`` when it gives them (``[[start, length], ...]``), else
* ``open ... close`` inclusive for a family whose images are markup the tokenizer reads (Qwen-VL's ``<img>`` /
  ``</img>``), else
* a maximal run of image ids: LLaVA's ``-200``, the tokenizer's ``<image>`` id, the ids vlmref's reference has inside
  its image spans, and those the adapter declares.

>>> view = normalise({"input_ids": [1, 7, 7, 7, 2], "labels": [-100, -100, -100, -100, 2]}, ImageIds({7}))
>>> view.ids, view.labels, view.image_lengths
((1, '<image>', 2), (-100, -100, 2), (3,))
>>> first_difference(view, normalise({"input_ids": [1, 7, 3], "labels": [-100, -100, 3]}, ImageIds({7})))
('input_ids', 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

IMAGE = "<image>"
EXTRAS = ("token_type_ids", "im_mask")


@dataclass(frozen=True)
class ImageIds:
    """What marks image positions in an encoding of one model type."""

    ids: frozenset[int] | set[int] = frozenset()
    open_close: tuple[int, int] | None = None  # markup the tokenizer reads: a run from open to close inclusive

    def with_ids(self, more: Iterable[int]) -> ImageIds:
        return ImageIds(frozenset(self.ids) | frozenset(more), self.open_close)


@dataclass(frozen=True)
class Normalised:
    ids: tuple[Any, ...]
    labels: tuple[Any, ...]
    extras: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    image_lengths: tuple[int, ...] = ()
    error: str | None = None
    # position in the raw encoding of each normalised item (for the aligned view)
    raw_index: tuple[int, ...] = ()


def image_runs(ids: list[int], marks: ImageIds, spans: list[list[int]] | None = None) -> list[tuple[int, int]]:
    """``(start, length)`` of each image run of ``ids`` (see the module docstring)."""
    if spans:
        return [(int(s), int(n)) for s, n in spans if int(n) > 0]
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(ids):
        if marks.open_close and ids[i] == marks.open_close[0]:
            end = next((j for j in range(i + 1, len(ids)) if ids[j] == marks.open_close[1]), None)
            if end is not None:
                runs.append((i, end - i + 1))
                i = end + 1
                continue
        if ids[i] in marks.ids:
            j = i
            while j < len(ids) and ids[j] in marks.ids:
                j += 1
            runs.append((i, j - i))
            i = j
            continue
        i += 1
    return runs


def normalise(encoding: dict[str, Any], marks: ImageIds) -> Normalised:
    """``encoding`` (``input_ids``, ``labels``, optional ``image_spans`` / extras, or ``error``) with each image run
    collapsed to one ``<image>`` item; its label is -100 when no position of the run has a loss."""
    if "error" in encoding:
        return Normalised((), (), error=str(encoding["error"]))
    ids = [int(i) for i in encoding["input_ids"]]
    labels = [int(i) for i in encoding.get("labels") or [-100] * len(ids)]
    runs = {start: n for start, n in image_runs(ids, marks, encoding.get("image_spans"))}
    out_ids, out_labels, where, lengths = [], [], [], []
    extras = {k: [] for k in EXTRAS if encoding.get(k) is not None}
    i = 0
    while i < len(ids):
        n = runs.get(i, 0)
        if n:
            out_ids.append(IMAGE)
            out_labels.append(-100 if all(x == -100 for x in labels[i:i + n]) else "labelled")
            lengths.append(n)
        else:
            n = 1
            out_ids.append(ids[i])
            out_labels.append(labels[i] if i < len(labels) else None)
        for key in extras:
            values = encoding[key]
            extras[key].append(int(values[i]) if i < len(values) else None)
        where.append(i)
        i += n
    return Normalised(tuple(out_ids), tuple(out_labels), {k: tuple(v) for k, v in extras.items()}, tuple(lengths),
                      raw_index=tuple(where))


def first_difference(reference: Normalised, got: Normalised) -> tuple[str, int] | None:
    """``(field, normalised index)`` of the first difference, ``("error", 0)`` when only one side raised, ``None``
    when they agree (both raising counts as agreeing: the case is refused either way)."""
    if reference.error is not None or got.error is not None:
        return None if (reference.error is None) == (got.error is None) else ("error", 0)
    for name, a, b in [("input_ids", reference.ids, got.ids), ("labels", reference.labels, got.labels),
                       *[(k, reference.extras[k], got.extras[k]) for k in reference.extras if k in got.extras]]:
        if a != b:
            return name, next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    return None


def _token_text(token: Any, tokenizer: Any) -> str:
    if token == IMAGE or tokenizer is None:
        return str(token)
    try:
        text = tokenizer.decode([token])
    except Exception:  # noqa: BLE001 - an id the tokenizer cannot decode (an adapter's own placeholder)
        return f"<id {token}>"
    return repr(text)[1:-1]


def aligned_view(reference: Normalised, got: Normalised, at: int, tokenizer: Any = None, before: int = 3,
                 after: int = 5) -> str:
    """A token-aligned table around normalised position ``at``: index, then id, text and label of each side."""
    if reference.error is not None or got.error is not None:
        return f"reference: {reference.error or 'encodes'}\nadapter:   {got.error or 'encodes'}"
    rows = [("pos", "ref id", "ref text", "ref label", "adapter id", "adapter text", "adapter label")]
    start, end = max(0, at - before), min(max(len(reference.ids), len(got.ids)), at + after + 1)
    for i in range(start, end):
        cells = [("> " if i == at else "  ") + str(i)]
        for view in (reference, got):
            if i < len(view.ids):
                token = view.ids[i]
                shown = IMAGE + f"x{view.image_lengths[view.ids[:i].count(IMAGE)]}" if token == IMAGE else str(token)
                cells += [shown, _token_text(token, tokenizer) if token != IMAGE else "", str(view.labels[i])]
            else:
                cells += ["-", "", ""]
        rows.append(tuple(cells))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
