"""``--dataset`` -> checked train/validation ``Sample`` lists and a report; the entry point ``sft``/``infer`` use.

::

    loaded = load_dataset(["data/train.jsonl", "coco-en-2-mini-sample#8"], "llava1d6-mistral-7b-instruct",
                          check_dataset_strategy="discard", dataset_test_ratio=0.01)
    loaded.train, loaded.val   # lists of Sample
    print(loaded.report.summary())

Order, per dataset (as ms-swift 2.2.0): read -> normalise (local files) -> ``#N`` + train/val split with
``RandomState(dataset_seed)`` -> normalise (named datasets) -> check with the strategy:

* ``none`` (ms-swift's default): no pre-pass; a bad row raises ``DatasetRowError`` naming it when it is first
  encoded (``encode_sample(template, sample, checker)``). Never replaced by another row, unlike ms-swift's lazy
  tokenization.
* ``error``: every row is checked before training; the first bad row stops loading.
* ``warning``: every row is checked; each bad row is reported and counted, and kept (it still fails when encoded).
* ``discard``: every row is checked; bad rows are dropped, and the report counts them per reason.

A row that cannot be parsed at all (invalid JSON, unknown format, malformed inline ``<img>`` markup) stops loading
under every strategy but ``discard``. A field named like ``images`` that no format reads (``image``, ``img``,
``Images``) makes the row invalid under ``error``/``discard`` and is a reported warning under ``none``/``warning``::

    d.jsonl:4: field 'image': expected 'images' (did you mean 'images'? ...); found 'a.png'

A dataset with no rows at all is a ``DatasetError``. Rows of a named dataset are named by the dataset and their row
index in it (``coco-en-mini-sample row 17``), whatever ``#N`` picked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DatasetError, DatasetRowError, ImageLoadError, SequenceTooLongError, TemplateInputError
from .formats import KNOWN_FIELDS, RawRow, near_miss_error, near_miss_fields, normalise_row, read_rows
from .named import load_raw_rows, parse_dataset_spec, split_dataset_arg
from .reasons import image_reason
from .report import DatasetReport
from .rules import RowChecker, row_error, template_row_error
from .sample import RowOrigin, Sample

CHECK_DATASET_STRATEGIES = ("none", "discard", "error", "warning")
EMPTY = "the dataset has no rows (an empty file, only blank lines, [] or only a CSV header); expected at least one row"


@dataclass
class LoadedDataset:
    train: list[Sample]
    val: list[Sample]
    report: DatasetReport


def load_dataset(
    dataset: str | Sequence[str],
    model_type: str,
    *,
    check_dataset_strategy: str = "none",
    dataset_test_ratio: float = 0.0,
    dataset_seed: int = 42,
    template: Any = None,
    check_images: bool = False,
    image_options: Any = None,
    require_response: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> LoadedDataset:
    """Load, split and check every dataset in ``dataset`` (names, ``name#N``, local .json/.jsonl/.csv files).

    ``template`` (a ``Template`` bound to the model's tokenizer, with ``max_length``) adds the length check;
    ``check_images`` opens every image header (local files, URLs through the cache, base64). ``progress(done,
    total)`` is called once per row checked; ``total`` grows as each dataset is read (``datasets.progress``).
    """
    if check_dataset_strategy not in CHECK_DATASET_STRATEGIES:
        raise ValueError(f"check_dataset_strategy must be one of {CHECK_DATASET_STRATEGIES}, got {check_dataset_strategy!r}")
    checker = RowChecker(model_type, template=template, check_images=check_images, image_options=image_options)
    report = DatasetReport(checker.model_type, check_dataset_strategy)
    train: list[Sample] = []
    val: list[Sample] = []
    counter = _Counter(progress)
    for item in split_dataset_arg(dataset):
        spec = parse_dataset_spec(item)
        parse = _Normaliser(checker, report, check_dataset_strategy, require_response)
        if spec.is_file:
            path = spec.name_or_path
            samples = parse.rows(_not_empty(read_rows(path), path), base_dir=os.path.dirname(os.path.abspath(path)))
            part_train, part_val = _split(item, samples, dataset_test_ratio, spec.sample, dataset_seed)
        else:
            info, raw = load_raw_rows(spec)
            if not raw:
                raise DatasetError(f"{item}: {EMPTY}")
            # the split picks row indices exactly as it picks rows, so each sample keeps its row in the dataset
            idx_train, idx_val = _split(item, list(range(len(raw))), dataset_test_ratio, spec.sample, dataset_seed)
            part_train = parse.rows(_named_rows(info, raw, idx_train or [], info.name), base_dir=None)
            part_val = parse.rows(_named_rows(info, raw, idx_val or [], f"{info.name} (val)"), base_dir=None)
        counter.total += len(part_train or []) + len(part_val or [])
        train += check_samples(part_train or [], checker, check_dataset_strategy, report, progress=counter.tick)
        val += check_samples(part_val or [], checker, check_dataset_strategy, report, progress=counter.tick)
    report.splits = {"train": len(train), "val": len(val)}
    return LoadedDataset(train, val, report)


class _Counter:
    """Rows checked so far out of ``total``, reported to ``progress(done, total)`` once per row."""

    def __init__(self, progress: Callable[[int, int], None] | None) -> None:
        self.progress, self.done, self.total = progress, 0, 0

    def tick(self, _sample: Sample) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _split(item: str, rows: list, ratio: float, sample: int | None, seed: int):
    from .split import train_val_split

    if not rows:
        return [], []
    try:
        return train_val_split(rows, ratio, sample, seed)
    except ValueError as e:
        raise DatasetError(f"{item}: {e}") from None


def _not_empty(rows: Iterable[RawRow], where: str) -> Iterator[RawRow]:
    """``rows``, then ``DatasetError`` if there were none (an empty file, blank lines only, ``[]``, a bare header)."""
    empty = True
    for row in rows:
        empty = False
        yield row
    if empty:
        raise DatasetError(f"{where}: {EMPTY}")


def _named_rows(info: Any, raw: list[dict[str, Any]], indices: Iterable[int], source: str) -> Iterable[RawRow]:
    """The swift-preprocessed rows at ``indices``; each origin is ``source`` and the row's index in the dataset (a
    row the row function refuses is yielded as its error, so ``discard`` counts it)."""
    for i in indices:
        try:
            data: Any = info.row_fn(raw[i], source=source, index=i)
        except DatasetRowError as err:
            data = err
        yield RawRow(RowOrigin(source, None, i), data)


class _Normaliser:
    def __init__(self, checker: RowChecker, report: DatasetReport, strategy: str, require_response: bool) -> None:
        self.checker = checker
        self.report = report
        self.strategy = strategy
        self.require_response = require_response

    def rows(self, raw_rows: Iterable[RawRow], base_dir: str | None) -> list[Sample]:
        out: list[Sample] = []
        for raw in raw_rows:
            self.report.counts(raw.origin.source).rows += 1
            misses = near_miss_fields(raw.data) if isinstance(raw.data, dict) else []
            if isinstance(raw.data, dict):
                self.report.ignored_fields.update(k for k in raw.data if k not in KNOWN_FIELDS and k not in misses)
            try:
                sample = normalise_row(raw, base_dir=base_dir, inline_images=self.checker.inline_images,
                                       require_response=self.require_response)
                if misses:  # an images field under another name: invalid for error/discard, reported for none/warning
                    err = near_miss_error(raw, misses[0])
                    if self.strategy in ("none", "warning"):
                        self.report.add_warning(err)
                    else:
                        raise err
                out.append(sample)
            except DatasetRowError as err:
                if self.strategy != "discard":
                    raise
                self.report.add_issue(err, discarded=True)
        return out


def check_samples(samples: list[Sample], checker: RowChecker, strategy: str, report: DatasetReport, *,
                  progress: Callable[[Sample], None] | None = None) -> list[Sample]:
    """Apply ``strategy`` to already-normalised samples; returns the samples that stay. ``progress(sample)`` is
    called once per row, after its check (under ``error``, not for the row that raises)."""
    if strategy == "none":
        for s in samples:
            report.counts(s.origin.source if s.origin else "<samples>").unchecked += 1
            if progress is not None:
                progress(s)
        return list(samples)
    kept: list[Sample] = []
    for s in samples:
        counts = report.counts(s.origin.source if s.origin else "<samples>")
        try:
            checker.check(s)
        except DatasetRowError as err:
            if strategy == "error":
                raise
            report.add_issue(err, discarded=strategy == "discard")
            if strategy == "warning":
                kept.append(s)
        else:
            counts.valid += 1
            kept.append(s)
        if progress is not None:
            progress(s)
    return kept


def encode_sample(template: Any, sample: Sample, checker: RowChecker | None = None) -> dict[str, Any]:
    """``template.encode(sample)``; any input, image or length error becomes a ``DatasetRowError`` naming the row.

    With ``checker`` the model's row rules are checked first: that is how ``check_dataset_strategy='none'`` finds a bad
    row (when it is first encoded, instead of before training).
    """
    origin = sample.origin
    if checker is not None:
        checker.check(sample)
    try:
        return template.encode(sample.to_example())
    except SequenceTooLongError as e:
        raise row_error(origin, "<encoded>", f"at most max_length={e.max_length} tokens (truncation_strategy=delete)",
                        f"{e.length} tokens, {e.image_tokens} of them image positions", "too_long") from e
    except TemplateInputError as e:
        raise template_row_error(e, origin) from e
    except ImageLoadError as e:
        raise row_error(origin, "images", "a readable image", str(e), image_reason(e.reason)) from e
