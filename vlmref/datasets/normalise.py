"""Pipeline stage 3: raw rows -> normalised ``Sample``s (``formats.normalise_row``), with the strategy's handling of
rows that cannot be read as a sample.

A row no format reads stops loading, except under ``discard`` (counted, dropped). A field named like ``images`` that
no format reads (``image``, ``img``, ``Images``) makes the row invalid under ``error``/``discard`` and is a reported
warning under ``none``/``warning``::

    d.jsonl:4: field 'image': expected 'images' (did you mean 'images'? ...); found 'a.png'
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import DatasetRowError
from .formats import KNOWN_FIELDS, RawRow, near_miss_error, near_miss_fields, normalise_row
from .report import DatasetReport
from .rules import RowChecker
from .sample import Sample


class Normaliser:
    """``rows(raw_rows, base_dir)``: the samples of ``raw_rows``; every row is counted in ``report``."""

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
