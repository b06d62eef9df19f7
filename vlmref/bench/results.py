"""``vlmref bench --out_dir DIR``: one folder with everything a run produced, each file written atomically.

::

    DIR/bench.json                  the vlmref-bench/1 artefact (environment + one record per scenario)
    DIR/bench.md                    measured vs predicted vs documented, and the replay of each snapshot
    DIR/environment.json            torch / transformers / CUDA / driver versions, GPU names, git commit
    DIR/<key>.snapshot.json         CUDA only: the allocator snapshot of the scenario (JSON, no stack frames)

>>> row = {"key": "k", "status": "ok", "documented_gib": 20.0, "per_device": {"cuda:0": {"allocated_gib": 17.0,
...        "reserved_gib": 18.0, "nvidia_smi_gib": 19.0}}, "predicted": {"allocated_gib": 16.5, "reserved_gib": 17.5,
...        "nvidia_smi_gib": 18.0}, "replay_peak_reserved_gib": 18.0, "replay_segments_match": True}
>>> table_row(row)[1:]
['ok', '20', '17.00', '18.00', '19.00', '16.50', '17.50', '18.00', '0.95', '0.95', '18.00 (segments match)']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..utils import atomic_write_bytes
from . import write_json_atomic

HEAD = ["key", "status", "documented GiB", "measured allocated", "measured reserved", "measured nvidia-smi",
        "predicted allocated", "predicted reserved", "predicted nvidia-smi", "predicted / measured",
        "measured / documented", "replay reserved"]


class OutDirError(ValueError):
    """``--out_dir`` cannot be used as a results folder (one line, naming it)."""


def prepare_out_dir(path: str | os.PathLike) -> Path:
    """Create the folder (and its parents) if needed; an ``OutDirError`` when it is a file or cannot be written."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutDirError(f"--out_dir {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutDirError(f"--out_dir {out}: cannot create it: {err.strerror or err}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutDirError(f"--out_dir {out}: not writable")
    return out


def _max(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def table_row(r: dict[str, Any]) -> list[str]:
    """One scenario's cells (``HEAD``): the busiest device's figures, ratios on the nvidia-smi figure (on CPU, where
    there is none, on reserved)."""
    devices = list((r.get("per_device") or {}).values())
    measured = {k: _max([d.get(k) for d in devices]) for k in ("allocated_gib", "reserved_gib", "nvidia_smi_gib")}
    pred = r.get("predicted") or {}
    smi_or_reserved = "nvidia_smi_gib" if measured["nvidia_smi_gib"] is not None else "reserved_gib"
    replay = r.get("replay_peak_reserved_gib")
    match = r.get("replay_segments_match")
    replay_cell = _fmt(replay) + ("" if replay is None or match is None else
                                  " (segments match)" if match else " (segments differ)")
    return [r["key"], r["status"], _fmt(r.get("documented_gib"), "g"), _fmt(measured["allocated_gib"]),
            _fmt(measured["reserved_gib"]), _fmt(measured["nvidia_smi_gib"]), _fmt(pred.get("allocated_gib")),
            _fmt(pred.get("reserved_gib")), _fmt(pred.get("nvidia_smi_gib")),
            _ratio(pred.get(smi_or_reserved), measured[smi_or_reserved]),
            _ratio(measured["nvidia_smi_gib"], r.get("documented_gib")), replay_cell]


def _environment_lines(artifact: dict[str, Any]) -> list[str]:
    env = artifact.get("environment") or {}
    gpus = ", ".join(f"{g['name']} ({g['total_memory_gib']} GiB)" for g in env.get("gpus") or []) or "none"
    versions = ", ".join(f"{k} {env[k]}" for k in ("torch", "transformers", "peft", "accelerate", "vlmref")
                         if env.get(k))
    return [f"- created {artifact.get('created')}, device {artifact.get('device')}"
            + (" (tiny models: a smoke test)" if artifact.get("tiny") else ""),
            f"- GPUs: {gpus}; CUDA {env.get('cuda') or '-'}, driver {env.get('driver') or '-'}",
            f"- {versions}; python {env.get('python')}; git {env.get('git_commit') or '-'}",
            f"- PYTORCH_CUDA_ALLOC_CONF: {(env.get('variables') or {}).get('PYTORCH_CUDA_ALLOC_CONF', 'unset')}"]


def markdown(artifact: dict[str, Any]) -> str:
    """``bench.md``: the environment, the table (GiB; the busiest device of each scenario) and the notes."""
    rows = [table_row(r) for r in artifact["results"]]
    lines = ["# vlmref bench", "", *_environment_lines(artifact), "",
             "| " + " | ".join(HEAD) + " |", "|" + "|".join("---" for _ in HEAD) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    lines += ["", "GiB per device, the busiest device of the scenario. measured: `max_memory_allocated` / "
              "`max_memory_reserved` and nvidia-smi-style used memory (`mem_get_info`: total - free) on CUDA; on CPU "
              "the tensor peak and the RSS growth. predicted: `vlmref memory` (`vlmref.memory.simulate`) for the same "
              "scenario. predicted / measured: on nvidia-smi (reserved on CPU). replay reserved: the scenario's "
              "allocator snapshot through `vlmref memory replay` (whether its new segments match the recorded "
              "ones in order)."]
    notes = [f"- {r['key']}: {r['message']}" for r in artifact["results"] if r.get("message")]
    notes += [f"- {r['key']}: prediction failed: {r['predicted']['error']}" for r in artifact["results"]
              if (r.get("predicted") or {}).get("error")]
    reasons = {r["snapshot"]["reason"] for r in artifact["results"] if (r.get("snapshot") or {}).get("reason")}
    notes += [f"- snapshot: {reason}" for reason in sorted(reasons)]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def write_out_dir(out_dir: str | os.PathLike, artifact: dict[str, Any]) -> list[Path]:
    """``bench.json``, ``bench.md`` and ``environment.json`` in ``out_dir`` (the snapshots are written as each
    scenario ends)."""
    out = Path(out_dir)
    paths = [write_json_atomic(out / "bench.json", artifact),
             write_json_atomic(out / "environment.json", artifact.get("environment") or {})]
    atomic_write_bytes(out / "bench.md", markdown(artifact).encode("utf-8"), mode=0o644)
    return [paths[0], out / "bench.md", paths[1]]
