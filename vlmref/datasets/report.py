"""What happened to every row: counts per source and reason, and the row-level issues.

``DatasetReport.summary()``::

    dataset check: model cogvlm-17b-instruct, check_dataset_strategy=discard
      data/train.jsonl: 120 rows, 117 valid, 3 invalid (3 discarded)
      invalid by reason: image_count 2, too_long 1
      data/train.jsonl:7: field 'images': expected exactly 1 image(s) per conversation (...); found 2
      ...
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..errors import DatasetRowError


@dataclass(frozen=True)
class RowIssue:
    source: str
    line: int | None
    field: str
    reason: str
    message: str
    row: int | None = None  # the row index in a named dataset (which has no lines)

    @classmethod
    def from_error(cls, err: DatasetRowError) -> RowIssue:
        return cls(err.source, err.line, err.field, err.reason, str(err), getattr(err, "row", None))

    @property
    def sort_key(self) -> tuple[str, int, int]:
        return self.source, self.line or 0, self.row or 0


@dataclass
class SourceCounts:
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    discarded: int = 0
    kept_invalid: int = 0
    unchecked: int = 0


@dataclass
class DatasetReport:
    """Counts per source, issues in the order found, and fields that no format reads (e.g. an ``id`` column)."""

    model_type: str
    strategy: str
    sources: dict[str, SourceCounts] = field(default_factory=dict)
    issues: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)  # rows kept as they are, reported (strategy none/warning)
    ignored_fields: Counter = field(default_factory=Counter)
    splits: dict[str, int] = field(default_factory=dict)
    check_only: bool = False  # `vlmref check-data`: nothing is trained, so nothing is "discarded"

    def counts(self, source: str) -> SourceCounts:
        return self.sources.setdefault(source, SourceCounts())

    def add_issue(self, err: DatasetRowError, *, discarded: bool) -> None:
        self.issues.append(RowIssue.from_error(err))
        counts = self.counts(err.source)
        counts.invalid += 1
        if discarded:
            counts.discarded += 1
        else:
            counts.kept_invalid += 1

    def add_warning(self, err: DatasetRowError) -> None:
        """A problem in a row that is kept (e.g. a near-miss ``image`` field under strategy none/warning)."""
        self.warnings.append(RowIssue.from_error(err))

    @property
    def by_reason(self) -> Counter:
        return Counter(issue.reason for issue in self.issues)

    @property
    def n_invalid(self) -> int:
        return len(self.issues)

    @property
    def ok(self) -> bool:
        return not self.issues

    def summary(self, max_issues: int | None = 20) -> str:
        how = "every row checked" if self.check_only else f"check_dataset_strategy={self.strategy}"
        lines = [f"dataset check: model {self.model_type}, {how}"]
        for source, c in self.sources.items():
            text = f"  {source}: {c.rows} rows"
            if c.unchecked:
                text += f" ({c.unchecked} not checked: strategy none)"
            else:
                text += f", {c.valid} valid, {c.invalid} invalid"
            if c.discarded and not self.check_only:
                text += f" ({c.discarded} discarded)"
            if c.kept_invalid:
                text += f" ({c.kept_invalid} kept: strategy {self.strategy})"
            lines.append(text)
        if self.splits and not self.check_only:
            lines.append("  split: " + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        if self.issues:
            lines.append("  invalid by reason: " + ", ".join(f"{r} {n}" for r, n in self.by_reason.most_common()))
            ordered = sorted(self.issues, key=lambda i: i.sort_key)
            shown = ordered if max_issues is None else ordered[:max_issues]
            lines += [f"  {issue.message}" for issue in shown]
            if 0 < len(shown) < len(self.issues):
                lines.append(f"  ... {len(self.issues) - len(shown)} more (full list: --json)")
        if self.warnings:
            reasons = Counter(w.reason for w in self.warnings)
            lines.append(f"  warnings (rows kept, strategy {self.strategy}): "
                         + ", ".join(f"{r} {n}" for r, n in reasons.most_common()))
            ordered = sorted(self.warnings, key=lambda i: i.sort_key)
            shown = ordered if max_issues is None else ordered[:max_issues]
            lines += [f"  warning: {w.message}" for w in shown]
            if 0 < len(shown) < len(self.warnings):
                lines.append(f"  ... {len(self.warnings) - len(shown)} more warnings")
        if self.ignored_fields:
            lines.append("  fields no format reads (ignored): " + ", ".join(f"{k} ({n} rows)" for k, n in sorted(self.ignored_fields.items())))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "check_dataset_strategy": self.strategy,
            "sources": {k: vars(v) for k, v in self.sources.items()},
            "splits": dict(self.splits),
            "invalid_by_reason": dict(self.by_reason),
            "issues": [vars(i) for i in self.issues],
            "warnings": [vars(w) for w in self.warnings],
            "ignored_fields": dict(self.ignored_fields),
        }
