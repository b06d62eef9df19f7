"""Pipeline stages 1-2: a ``--dataset`` value -> its sources (local files, named datasets with ``#N``) -> raw rows.

>>> [s.item for s in dataset_sources("rows.jsonl,coco-en-2-mini-sample#8")]  # doctest: +SKIP
['rows.jsonl', 'coco-en-2-mini-sample#8']

A local file's rows are read as they come (``formats.read_rows``: line and column of every row); a named dataset's are
its hub rows, the ms-swift row function applied only to the rows the split picks (``rows_at``), each named by the
dataset and its row index. A source with no rows at all is a ``DatasetError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DatasetError, DatasetRowError
from .formats import RawRow, read_rows
from .named import DatasetSpec, load_raw_rows, parse_dataset_spec, split_dataset_arg
from .sample import RowOrigin

EMPTY = "the dataset has no rows (an empty file, only blank lines, [] or only a CSV header); expected at least one row"


@dataclass(frozen=True)
class DatasetSource:
    """One ``--dataset`` item, parsed: a local file (``base_dir`` = its folder, for relative image paths) or a named
    dataset."""

    item: str
    spec: DatasetSpec

    @property
    def is_file(self) -> bool:
        return self.spec.is_file

    @property
    def base_dir(self) -> str | None:
        return os.path.dirname(os.path.abspath(self.spec.name_or_path)) if self.is_file else None

    def file_rows(self) -> Iterator[RawRow]:
        """A local file's rows, in file order; ``DatasetError`` at the end if there were none."""
        return _not_empty(read_rows(self.spec.name_or_path), self.spec.name_or_path)

    def named_rows(self) -> NamedRows:
        """A named dataset's hub rows (before ``#N``), row function not yet applied."""
        info, raw = load_raw_rows(self.spec)
        if not raw:
            raise DatasetError(f"{self.item}: {EMPTY}")
        return NamedRows(info, raw)


def dataset_sources(dataset: str | Sequence[str]) -> list[DatasetSource]:
    """Every item of ``--dataset`` (comma- or space-separated; file names kept whole), parsed."""
    return [DatasetSource(item, parse_dataset_spec(item)) for item in split_dataset_arg(dataset)]


@dataclass
class NamedRows:
    """The raw rows of a named dataset and its registration (``info.row_fn``: ms-swift's preprocessing)."""

    info: Any
    raw: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.raw)

    def rows_at(self, indices: Iterable[int], source: str) -> Iterator[RawRow]:
        """The preprocessed rows at ``indices``; each origin is ``source`` and the row's index in the dataset (a row
        the row function refuses is yielded as its error, so ``discard`` counts it)."""
        for i in indices:
            try:
                data: Any = self.info.row_fn(self.raw[i], source=source, index=i)
            except DatasetRowError as err:
                data = err
            yield RawRow(RowOrigin(source, None, i), data)


def _not_empty(rows: Iterable[RawRow], where: str) -> Iterator[RawRow]:
    """``rows``, then ``DatasetError`` if there were none (an empty file, blank lines only, ``[]``, a bare header)."""
    empty = True
    for row in rows:
        empty = False
        yield row
    if empty:
        raise DatasetError(f"{where}: {EMPTY}")
