"""Real GPU measurements of vlmref's memory scenarios (``vlmref bench``), the regression gate and the docker harness.

The artefact is one JSON file (schema ``vlmref-bench/1``)::

    {"schema": "vlmref-bench/1", "created": "2025-01-01T00:00:00+00:00", "device": "cuda", "tiny": false,
     "environment": {...}, "results": [{"key": ..., "scenario": {...}, "status": "ok", ...}]}

This package imports without torch (``gpu`` imports it when a scenario runs).

>>> art = new_artifact({"python": "3.12"}, [], device="cpu", tiny=True)
>>> art["schema"], art["results"]
('vlmref-bench/1', [])
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

from ..utils import atomic_write_bytes

SCHEMA = "vlmref-bench/1"
STATUSES = ("ok", "skipped", "oom", "error")
RESULT_KEYS = ("key", "scenario", "status", "per_device", "peak_reserved_gib", "peak_allocated_gib",
               "tokens_per_second", "samples_per_second", "documented_gib", "message")


class ArtifactError(ValueError):
    """A file that is not a ``vlmref-bench/1`` artefact."""


def new_artifact(environment: dict[str, Any], results: list[dict[str, Any]], *, device: str,
                 tiny: bool) -> dict[str, Any]:
    """The top-level JSON document (``created`` is the current UTC time, ISO 8601)."""
    return {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "device": device, "tiny": bool(tiny), "environment": environment, "results": list(results)}


def validate_artifact(data: Any, source: str = "<artifact>") -> dict[str, Any]:
    """Check the schema tag and each result's required keys; return ``data`` unchanged."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ArtifactError(f"{source}: not a {SCHEMA} artefact (schema: {got!r})")
    if not isinstance(data.get("results"), list):
        raise ArtifactError(f"{source}: 'results' must be a list")
    for i, row in enumerate(data["results"]):
        missing = [k for k in ("key", "scenario", "status") if k not in row]
        if missing:
            raise ArtifactError(f"{source}: results[{i}] lacks {missing}")
        if row["status"] not in STATUSES:
            raise ArtifactError(f"{source}: results[{i}] ({row['key']}) has status {row['status']!r}, "
                                f"expected one of {STATUSES}")
    return data


def load_artifact(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a results file (``ArtifactError`` with the path when it is not one)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: cannot read a {SCHEMA} artefact: {err}") from err
    return validate_artifact(data, str(path))


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as JSON to a temp file beside ``path`` then ``os.replace`` it into place (readers never see a
    half-written file). The file is made world-readable: the docker harness reads what uid 1001 wrote.

    >>> import tempfile; p = write_json_atomic(Path(tempfile.mkdtemp()) / "r.json", {"a": 1}); p.read_text()
    '{\\n "a": 1\\n}\\n'
    """
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"), mode=0o644)
    return path


__all__ = ["SCHEMA", "STATUSES", "RESULT_KEYS", "ArtifactError", "load_artifact", "new_artifact",
           "validate_artifact", "write_json_atomic"]
