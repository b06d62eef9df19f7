"""Pipeline stage 5: apply ``--check_dataset_strategy`` to normalised samples with the family's rules (``RowChecker``).

* ``none`` (ms-swift's default): no pre-pass; a bad row raises ``DatasetRowError`` naming it when it is first encoded
  (``encode.encode_sample(template, sample, checker)``). Never replaced by another row, unlike ms-swift's lazy
  tokenization.
* ``error``: every row is checked before training; the first bad row stops loading.
* ``warning``: every row is checked; each bad row is reported and counted, and kept (it still fails when encoded).
* ``discard``: every row is checked; bad rows are dropped, and the report counts them per reason.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import DatasetRowError
from .report import DatasetReport
from .rules import RowChecker
from .sample import Sample

CHECK_DATASET_STRATEGIES = ("none", "discard", "error", "warning")


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
