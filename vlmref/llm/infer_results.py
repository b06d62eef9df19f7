"""The results file of ``vlmref infer`` on a dataset: one line per sample, appended and flushed as soon as it is
generated, so a killed run keeps every finished row; rerunning the same command resumes that file.

While a run is going, ``infer_result/<stem>.jsonl`` has a sidecar ``<stem>.progress.json`` (written atomically)
holding a fingerprint of the run: the arguments that decide the rows and their responses, and every evaluated row.
The sidecar is removed once all rows are written. A rerun whose fingerprint matches an unfinished file appends to it
and skips the rows already there (a row torn by a kill is cut off and generated again)::

    vlmref infer --ckpt_dir output/.../checkpoint-6 --load_dataset_config true --show_dataset_sample -1
    # killed after 3 of 10 rows; the same command again logs:
    # [INFO:vlmref] resuming .../infer_result/20260101-120000.jsonl: 3 of 10 row(s) already done, skipped

The generation config a run used is saved next to its results, ``<stem>.generation_config.json``; the checkpoint
folder's own files are never rewritten.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

from ..utils import atomic_write_bytes

PROGRESS_SUFFIX = ".progress.json"
# arguments that change neither which rows are evaluated nor what is generated for them
_PRESENTATION = {"verbose", "stream", "eval_human", "save_result", "sft_args", "overwrite_generation_config"}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str)


def row_key(obj: dict[str, Any]) -> str:
    """What identifies a result line with its sample: system, query, label, history, images."""
    return _dumps([obj.get("system"), obj.get("query"), obj.get("label"), obj.get("history"), obj.get("images")])


def fingerprint(args: Any, keys: list[str]) -> str:
    """sha256 of the run's deciding arguments and its rows (in order)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.name not in _PRESENTATION}
    return hashlib.sha256(_dumps([values, keys]).encode("utf-8")).hexdigest()


def progress_path(jsonl_path: str) -> str:
    return jsonl_path[: -len(".jsonl")] + PROGRESS_SUFFIX if jsonl_path.endswith(".jsonl") else jsonl_path + PROGRESS_SUFFIX


def _finished_lines(path: str, keys: list[str]) -> tuple[list[dict[str, Any]], int] | None:
    """The complete lines of ``path`` that match ``keys`` in order, and their byte length; None if a line does not."""
    with open(path, "rb") as f:
        data = f.read()
    done: list[dict[str, Any]] = []
    end = 0
    while True:
        nl = data.find(b"\n", end)
        if nl < 0:
            break  # a line without its newline was cut by a kill: generated again
        obj = json.loads(data[end:nl].decode("utf-8"))
        if len(done) >= len(keys) or row_key(obj) != keys[len(done)]:
            return None
        done.append(obj)
        end = nl + 1
    return done, end


def find_resumable(folder: str, fp: str, keys: list[str]) -> tuple[str, list[dict[str, Any]]] | None:
    """An unfinished results file in ``folder`` with fingerprint ``fp`` (newest first), cut to its complete lines."""
    for side in sorted(glob.glob(os.path.join(glob.escape(folder), "*" + PROGRESS_SUFFIX)), reverse=True):
        try:
            with open(side, encoding="utf-8") as f:
                if json.load(f).get("fingerprint") != fp:
                    continue
            path = side[: -len(PROGRESS_SUFFIX)] + ".jsonl"
            found = _finished_lines(path, keys) if os.path.isfile(path) else ([], 0)
        except (OSError, ValueError):
            continue
        if found is None:
            continue
        done, size = found
        if os.path.isfile(path) and os.path.getsize(path) != size:
            os.truncate(path, size)
        return path, done
    return None


class ResultLog:
    """Appends one JSON line per sample to the results file and flushes it; ``close(complete=True)`` removes the
    progress sidecar. ``path`` None: nothing is written (``--save_result false``)."""

    def __init__(self, path: str | None, args: Any, keys: list[str], log: Callable[[str], None]) -> None:
        self.path, self.done = path, []
        self._file = None
        if path is None:
            return
        fp = fingerprint(args, keys)
        found = find_resumable(os.path.dirname(path), fp, keys)
        if found is not None:
            self.path, self.done = found
            log(f"resuming {self.path}: {len(self.done)} of {len(keys)} row(s) already done, skipped")
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write_bytes(progress_path(path), _dumps({"fingerprint": fp, "rows": len(keys)}).encode("utf-8"))
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, obj: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
            self._file.flush()

    def close(self, complete: bool) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        side = progress_path(self.path)
        if complete and os.path.exists(side):
            os.unlink(side)
        if complete and os.path.getsize(self.path) == 0:
            os.unlink(self.path)


def save_generation_config(generation_config: Any, jsonl_path: str | None) -> str | None:
    """Write the generation config next to the results (``<stem>.generation_config.json``); returns the path."""
    if jsonl_path is None:
        return None
    path = jsonl_path[: -len(".jsonl")] + ".generation_config.json"
    atomic_write_bytes(path, generation_config.to_json_string().encode("utf-8"))
    return path
