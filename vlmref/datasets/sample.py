"""The one sample type every dataset format normalises to, and where a row came from.

A ``Sample`` is ms-swift's example dict made explicit and immutable::

    Sample(query='<image>What is this?', response='A cat.', history=(), system=None, images=('/data/cat.png',))
    .to_example() -> {'query': '<image>What is this?', 'response': 'A cat.', 'history': [], 'images': ['/data/cat.png']}

``system=None`` means "the template's default system". Image references are absolute paths, URLs, base64 strings,
``data:`` URIs or PIL images; ``None`` marks a turn without an image in the one-entry-per-turn form (Yi-VL, LLaVA).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RowOrigin:
    """Where a row was read: the file (or dataset name), its 1-based line (None when unknown) and 0-based index
    (for a named dataset: the row's index in the dataset, whatever ``#N`` picked)::

        str(RowOrigin("d.jsonl", 7, 6)) == "d.jsonl:7";  str(RowOrigin("coco-en-mini", None, 17)) == "coco-en-mini row 17"
    """

    source: str
    line: int | None
    index: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else f"{self.source} row {self.index}"


@dataclass(frozen=True)
class Sample:
    """One conversation in ms-swift's shape. ``origin`` does not take part in equality."""

    query: str
    response: str | None
    history: tuple[tuple[str, str], ...] = ()
    system: str | None = None
    images: tuple[Any, ...] = ()
    origin: RowOrigin | None = field(default=None, compare=False)

    def to_example(self) -> dict[str, Any]:
        """The example dict ``Template.encode`` takes (a fresh dict every call)."""
        example: dict[str, Any] = {
            "query": self.query,
            "response": self.response,
            "history": [list(turn) for turn in self.history],
            "images": list(self.images),
        }
        if self.system is not None:
            example["system"] = self.system
        return example

    @property
    def n_images(self) -> int:
        return sum(1 for image in self.images if image is not None)

    @property
    def where(self) -> str:
        return str(self.origin) if self.origin is not None else "<sample>"
