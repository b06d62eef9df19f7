"""The conformance report: a summary table per model type, then the first case of each kind of difference with its
explanation and a token-aligned view; as markdown and as JSON.

>>> print(summary_table([{"model_type": "qwen-vl-chat", "template_type": "qwen-vl", "cases": 212, "equal": 212,
...                       "differ": 0, "skipped": 0, "kinds": {}}]).splitlines()[2])
| qwen-vl-chat | qwen-vl | 212 | 212 | 0 | 0 | 100.0 % | - |
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from .run import ModelReport


def model_summary(report: ModelReport) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for r in report.results:
        if r.status == "differ":
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
    return {"model_type": report.model_type, "template_type": report.template_type, "cases": len(report.results),
            "equal": report.count("equal"), "differ": report.count("differ"), "skipped": report.count("skipped"),
            "kinds": kinds}


def summary_table(rows: list[dict[str, Any]]) -> str:
    head = ("model type", "template", "cases", "equal", "differ", "skipped", "equal share", "differences by kind")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        compared = r["cases"] - r["skipped"]
        share = f"{100 * r['equal'] / compared:.1f} %" if compared else "-"
        kinds = "; ".join(f"{k}: {n}" for k, n in sorted(r["kinds"].items(), key=lambda kv: -kv[1])) or "-"
        lines.append(f"| {r['model_type']} | {r['template_type']} | {r['cases']} | {r['equal']} | {r['differ']} | "
                     f"{r['skipped']} | {share} | {kinds} |")
    return "\n".join(lines)


def _first_of_each_kind(report: ModelReport) -> list[Any]:
    seen: dict[str, Any] = {}
    for r in report.results:
        if r.status == "differ" and r.kind not in seen:
            seen[r.kind] = r
    return list(seen.values())


def run_facts(run: dict[str, Any]) -> dict[str, Any]:
    from ..bench.env import result_versions

    adapter = run["adapter"]
    versions = result_versions()
    return {"adapter": adapter.target, "adapter_name": adapter.name, "adapter_version": adapter.version,
            "image_placement": adapter.image_placement, "profile": run["profile"],
            "date": datetime.date.today().isoformat(), "vlmref": versions.get("vlmref"),
            "vlmref_commit": (versions.get("git_commit") or "")[:12], "seconds": round(run["seconds"], 1),
            "not_covered": run["not_covered"], "not_in_profile": run.get("not_in_profile", [])}


def markdown_report(run: dict[str, Any]) -> str:
    facts = run_facts(run)
    rows = [model_summary(r) for r in run["reports"]]
    total = sum(r["cases"] - r["skipped"] for r in rows)
    equal = sum(r["equal"] for r in rows)
    out = [f"# vlmref conform: {facts['adapter_name']}"
           + (f" {facts['adapter_version']}" if facts["adapter_version"] else ""),
           "",
           f"Adapter `{facts['adapter']}` (image placement: {facts['image_placement']}) against vlmref "
           f"{facts['vlmref']} (commit {facts['vlmref_commit'] or 'unknown'}), profile `{facts['profile']}`, "
           f"{facts['date']}; {equal}/{total} cases equal, in {facts['seconds']} s.",
           ""]
    if facts["not_covered"]:
        out += [f"Not covered by the adapter: {', '.join(facts['not_covered'])}.", ""]
    if facts["not_in_profile"]:
        out += [f"No `{facts['profile']}` template (not compared): {', '.join(facts['not_in_profile'])}.", ""]
    out += [summary_table(rows), ""]
    for report in run["reports"]:
        for r in _first_of_each_kind(report):
            n = sum(x.status == "differ" and x.kind == r.kind for x in report.results)
            out += [f"## {report.model_type}: {r.kind} ({n} case{'s' if n != 1 else ''})", "",
                    f"First: `{r.case.case_id}`, {r.field} differ at normalised position {r.index}.",
                    "", (r.explanation_text or "No recorded deviation explains it.") + "", "",
                    "```", r.view, "```", ""]
    return "\n".join(out).rstrip() + "\n"


def json_report(run: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "vlmref-conform/1", **run_facts(run),
            "models": [{**model_summary(r),
                        "differences": [{"case": x.case.case_id, "field": x.field, "index": x.index, "kind": x.kind,
                                         "explanation": list(x.explanation) if x.explanation else None}
                                        for x in r.results if x.status == "differ"],
                        "skipped_cases": [{"case": x.case.case_id, "reason": x.note}
                                    for x in r.results if x.status == "skipped"]}
                       for r in run["reports"]]}


def dump_json(run: dict[str, Any]) -> str:
    return json.dumps(json_report(run), indent=1, ensure_ascii=False) + "\n"
