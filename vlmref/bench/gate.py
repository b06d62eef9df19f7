"""Regression gate over ``vlmref bench`` artefacts, and the check of measurements against the seeds' figures.

``vlmref bench --compare BASELINE.json [--tolerance 0.05] RESULT.json``: for each key in both files, peak memory
(``peak_reserved_gib``, ``peak_allocated_gib``) may grow and ``tokens_per_second`` may drop by at most ``tolerance``
(relative); a key the baseline measured (status ok) that the result lacks, or did not measure, is a regression too
(``--allow_missing`` lists it without failing). ``vlmref bench --compare_documented RESULT.json [--tolerance 0.10]``:
each measured per-GPU figure (nvidia-smi style) must lie within ``tolerance`` of the seed's documented GB.

>>> base = {"schema": "vlmref-bench/1", "results": [{"key": "a", "scenario": {}, "status": "ok",
...         "peak_reserved_gib": 10.0, "tokens_per_second": 100.0}]}
>>> new = {"schema": "vlmref-bench/1", "results": [{"key": "a", "scenario": {}, "status": "ok",
...        "peak_reserved_gib": 10.8, "tokens_per_second": 99.0}]}
>>> cmp = compare(base, new, tolerance=0.05)
>>> cmp.ok, [(r.key, r.metric) for r in cmp.regressions]
(False, [('a', 'peak_reserved_gib')])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import validate_artifact

# metric -> +1 when larger is worse (memory), -1 when smaller is worse (throughput)
METRICS: dict[str, int] = {"peak_reserved_gib": +1, "peak_allocated_gib": +1, "tokens_per_second": -1}
DOCUMENTED_TOLERANCE = 0.10


@dataclass(frozen=True)
class Row:
    key: str
    metric: str
    baseline: float | str | None
    result: float | str | None
    change: float | None  # relative: (result - baseline) / baseline
    regression: bool
    note: str = ""

    def cells(self) -> list[str]:
        def fmt(v: float | str | None) -> str:
            return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

        change = "-" if self.change is None else ("inf" if math.isinf(self.change) else f"{self.change:+.1%}")
        verdict = "REGRESSION" if self.regression else "ok"
        return [self.key, self.metric, fmt(self.baseline), fmt(self.result), change,
                verdict + (f" ({self.note})" if self.note else "")]


@dataclass
class Comparison:
    rows: list[Row] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # keys measured in the baseline, absent from / unmeasured in the result
    new: list[str] = field(default_factory=list)  # keys only in the result
    problems: list[str] = field(default_factory=list)  # the files cannot be compared (e.g. tiny vs full size)
    allow_missing: bool = False
    labels: tuple[str, str] = ("baseline", "result")

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regression]

    @property
    def ok(self) -> bool:
        return not self.regressions and not self.problems and (self.allow_missing or not self.missing)

    def table(self) -> str:
        """Fixed-width text table plus the missing/new keys and the verdict."""
        lines = text_table(["key", "metric", *self.labels, "change", "verdict"], [r.cells() for r in self.rows])
        lines += [f"problem: {p}" for p in self.problems]
        if self.missing:
            lines.append(f"missing ({'allowed' if self.allow_missing else 'REGRESSION'}): {', '.join(self.missing)}")
        if self.new:
            lines.append(f"new (not in the baseline, not compared): {', '.join(self.new)}")
        n = len(self.regressions)
        lines.append("PASS" if self.ok else f"FAIL: {n} regression(s), {len(self.missing)} missing key(s)"
                     + (f", {len(self.problems)} problem(s)" if self.problems else ""))
        return "\n".join(lines)


def text_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns, a dashed rule under the header."""
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def relative_change(baseline: float, result: float) -> float:
    """``(result - baseline) / baseline``; from a zero baseline any growth is ``inf`` (any drop ``-inf``)."""
    if baseline == 0:
        return 0.0 if result == 0 else math.copysign(math.inf, result)
    return (result - baseline) / abs(baseline)


def _by_key(artifact: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in artifact["results"]}


def compare(baseline: dict[str, Any], result: dict[str, Any], tolerance: float = 0.05,
            allow_missing: bool = False) -> Comparison:
    """Per matching key and metric, flag memory growth or throughput loss beyond ``tolerance``."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    validate_artifact(baseline, "baseline")
    validate_artifact(result, "result")
    out = Comparison(allow_missing=allow_missing)
    for field_name in ("device", "tiny"):
        if field_name in baseline and field_name in result and baseline[field_name] != result[field_name]:
            out.problems.append(f"baseline has {field_name}={baseline[field_name]!r}, result "
                                f"{field_name}={result[field_name]!r}: not comparable")
    base, res = _by_key(baseline), _by_key(result)
    out.new = sorted(set(res) - set(base))
    for key in sorted(base):
        b = base[key]
        if b["status"] != "ok":
            continue  # nothing measured to regress from
        r = res.get(key)
        if r is None or r["status"] == "skipped":
            out.missing.append(key)
            continue
        if r["status"] != "ok":
            out.rows.append(Row(key, "status", "ok", r["status"], None, True, (r.get("message") or "")[:80]))
            continue
        for metric, worse in METRICS.items():
            bv, rv = b.get(metric), r.get(metric)
            if bv is None or rv is None:
                continue
            change = relative_change(float(bv), float(rv))
            out.rows.append(Row(key, metric, float(bv), float(rv), change, worse * change > tolerance))
    return out


def measured_gib(row: dict[str, Any]) -> float | None:
    """The per-GPU figure a seed's "GB GPU memory" is compared with: the largest nvidia-smi-style used memory over the
    scenario's devices (falls back to ``peak_reserved_gib`` when no device reported it)."""
    values = [d.get("nvidia_smi_gib") for d in (row.get("per_device") or {}).values() if isinstance(d, dict)]
    values = [v for v in values if v is not None]
    if values:
        return max(values)
    return row.get("peak_reserved_gib")


def compare_documented(result: dict[str, Any], tolerance: float = DOCUMENTED_TOLERANCE) -> Comparison:
    """Each result carrying ``documented_gib`` must measure within ``tolerance`` of it (either way). Scenarios that
    were skipped (not enough GPUs, need torchrun) are listed as missing without failing; oom/error fail."""
    validate_artifact(result, "result")
    out = Comparison(allow_missing=True, labels=("documented", "measured"))
    if result.get("tiny"):
        out.problems.append("the result was measured on tiny models (--tiny): not comparable with the seeds' figures")
    for row in result["results"]:
        documented = row.get("documented_gib")
        if documented is None:
            continue
        key, status = row["key"], row["status"]
        if status == "skipped":
            out.missing.append(key)
        elif status != "ok":
            out.rows.append(Row(key, "status", "ok", status, None, True, (row.get("message") or "")[:80]))
        else:
            measured = measured_gib(row)
            if measured is None:
                out.rows.append(Row(key, "gib_per_gpu", float(documented), None, None, True, "no memory measured"))
                continue
            change = relative_change(float(documented), float(measured))
            out.rows.append(Row(key, "gib_per_gpu", float(documented), float(measured), change,
                                abs(change) > tolerance))
    return out
