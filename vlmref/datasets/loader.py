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

A row that cannot be parsed at all (invalid JSON, unknown format) stops loading under every strategy but ``discard``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DatasetError, DatasetRowError, ImageLoadError, SequenceTooLongError, TemplateInputError
from .formats import KNOWN_FIELDS, RawRow, normalise_row, read_rows
from .named import parse_dataset_spec, split_dataset_arg
from .report import DatasetReport
from .rules import RowChecker
from .sample import RowOrigin, Sample

CHECK_DATASET_STRATEGIES = ("none", "discard", "error", "warning")


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
) -> LoadedDataset:
    """Load, split and check every dataset in ``dataset`` (names, ``name#N``, local .json/.jsonl/.csv files).

    ``template`` (a ``Template`` bound to the model's tokenizer, with ``max_length``) adds the length check;
    ``check_images`` opens every image header (local files, URLs through the cache, base64).
    """
    if check_dataset_strategy not in CHECK_DATASET_STRATEGIES:
        raise ValueError(f"check_dataset_strategy must be one of {CHECK_DATASET_STRATEGIES}, got {check_dataset_strategy!r}")
    checker = RowChecker(model_type, template=template, check_images=check_images, image_options=image_options)
    report = DatasetReport(checker.model_type, check_dataset_strategy)
    train: list[Sample] = []
    val: list[Sample] = []
    for item in split_dataset_arg(dataset):
        spec = parse_dataset_spec(item)
        parse = _Normaliser(checker, report, check_dataset_strategy, require_response)
        if spec.is_file:
            path = spec.name_or_path
            samples = parse.rows(read_rows(path), base_dir=os.path.dirname(os.path.abspath(path)))
            part_train, part_val = _split(item, samples, dataset_test_ratio, spec.sample, dataset_seed)
        else:
            raw_train, raw_val = _split(item, spec, dataset_test_ratio, None, dataset_seed)
            name = str(spec)
            part_train = parse.rows(_named_rows(name, raw_train or []), base_dir=None)
            part_val = parse.rows(_named_rows(f"{name} (val)", raw_val or []), base_dir=None)
        train += check_samples(part_train or [], checker, check_dataset_strategy, report)
        val += check_samples(part_val or [], checker, check_dataset_strategy, report)
    report.splits = {"train": len(train), "val": len(val)}
    return LoadedDataset(train, val, report)


def _split(item: str, rows_or_spec: Any, ratio: float, sample: int | None, seed: int):
    from .named import load_named_split
    from .split import train_val_split

    try:
        if isinstance(rows_or_spec, list):
            if not rows_or_spec:
                return [], []
            return train_val_split(rows_or_spec, ratio, sample, seed)
        return load_named_split(rows_or_spec, dataset_test_ratio=ratio, dataset_seed=seed)
    except ValueError as e:
        if isinstance(e, DatasetRowError):
            raise
        raise DatasetError(f"{item}: {e}") from None


def _named_rows(name: str, rows: Iterable[dict[str, Any]]) -> Iterable[RawRow]:
    for i, row in enumerate(rows):
        yield RawRow(RowOrigin(name, None, i), row)


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
            if isinstance(raw.data, dict):
                self.report.ignored_fields.update(k for k in raw.data if k not in KNOWN_FIELDS)
            try:
                out.append(normalise_row(raw, base_dir=base_dir, inline_images=self.checker.inline_images,
                                         require_response=self.require_response))
            except DatasetRowError as err:
                if self.strategy != "discard":
                    raise
                self.report.add_issue(err, discarded=True)
        return out


def check_samples(samples: list[Sample], checker: RowChecker, strategy: str, report: DatasetReport) -> list[Sample]:
    """Apply ``strategy`` to already-normalised samples; returns the samples that stay."""
    if strategy == "none":
        for s in samples:
            report.counts(s.origin.source if s.origin else "<samples>").unchecked += 1
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
            continue
        counts.valid += 1
        kept.append(s)
    return kept


def encode_sample(template: Any, sample: Sample, checker: RowChecker | None = None) -> dict[str, Any]:
    """``template.encode(sample)``; any input, image or length error becomes a ``DatasetRowError`` naming the row.

    With ``checker`` the model's row rules are checked first: that is how ``check_dataset_strategy='none'`` finds a bad
    row (when it is first encoded, instead of before training).
    """
    origin = sample.origin or RowOrigin("<sample>", None, 0)
    if checker is not None:
        checker.check(sample)
    try:
        return template.encode(sample.to_example())
    except SequenceTooLongError as e:
        raise DatasetRowError(origin.source, origin.line, "<encoded>",
                              f"at most max_length={e.max_length} tokens (truncation_strategy=delete)",
                              f"{e.length} tokens, {e.image_tokens} of them image positions", "too_long") from e
    except TemplateInputError as e:
        raise DatasetRowError(origin.source, origin.line, e.field, f"input the {e.template_type} template accepts",
                              str(e).split(": ", 1)[-1], e.reason) from e
    except ImageLoadError as e:
        raise DatasetRowError(origin.source, origin.line, "images", "a readable image", str(e), f"image_{e.reason}") from e
