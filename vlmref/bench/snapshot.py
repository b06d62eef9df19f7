"""The CUDA caching allocator's own record of one ``vlmref bench`` scenario, as JSON, replayed through vlmref's model.

On CUDA with ``--out_dir``, each scenario runs between ``SnapshotRecorder.start()`` (after the previous scenario's
memory is released and the peak statistics are reset, before the model is built) and ``stop()``:
``torch.cuda.memory._record_memory_history(context=None)`` (no stack frames) and ``torch.cuda.memory._snapshot()``.
Everything else here is plain Python on dicts shaped like torch's snapshot, so it is tested without a GPU:

* ``json_snapshot``: the snapshot without frames and with only the keys the replay reads; ``device_traces`` (the
  history since recording began) get, in front, synthetic entries rebuilding what the allocator already held when
  recording began (``preamble``, from the ``segments`` of a snapshot taken then; empty after ``empty_cache()``);
* ``write_snapshot``: written atomically as ``<out_dir>/<key>.snapshot.json`` (``snapshot_filename``), a file
  ``vlmref memory replay FILE --json`` reads as it is;
* ``replay_fields``: that file through ``memory.replay`` (the run's ``PYTORCH_CUDA_ALLOC_CONF``): per device the
  replayed peak reserved and whether the replayed new segments match the recorded ones, for the result record.

>>> snapshot_filename("qwen-vl-chat/infer/1gpu")
'qwen-vl-chat_infer_1gpu.snapshot.json'
>>> raw = {"segments": [], "device_traces": [[{"action": "alloc", "addr": 1, "size": 512, "stream": 0,
...        "frames": [{"filename": "x.py", "line": 1, "name": "f"}]}]]}
>>> json_snapshot(raw)["device_traces"]
[[{'action': 'alloc', 'addr': 1, 'size': 512, 'stream': 0}]]
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..utils import atomic_write_bytes

GIB = 1 << 30
SNAPSHOT_SCHEMA = "vlmref-bench-snapshot/1"
DEFAULT_MAX_ENTRIES = 3_000_000
TRACE_KEYS = ("action", "addr", "size", "stream")
SEGMENT_KEYS = ("device", "address", "total_size", "allocated_size", "active_size", "requested_size", "stream",
                "segment_type", "segment_pool_id", "is_expandable")
BLOCK_KEYS = ("address", "size", "requested_size", "state")
ACTIVE = ("active_allocated", "active_awaiting_free")
SMALL_SEGMENT = 2 << 20  # the small pool's segment size: its blocks are allocated one by one


def snapshot_filename(key: str) -> str:
    """``<key>.snapshot.json`` with ``/`` (and anything else not file-name safe) replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_") + ".snapshot.json"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _segment(seg: dict[str, Any]) -> dict[str, Any]:
    out = {k: _jsonable(seg[k]) for k in SEGMENT_KEYS if k in seg}
    out["blocks"] = [{k: b[k] for k in BLOCK_KEYS if k in b} for b in seg.get("blocks", [])]
    return out


def preamble(segments: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Synthetic trace entries per device that rebuild ``segments`` (a snapshot's, taken when recording began): per
    segment a ``segment_alloc``; for a large one an ``alloc`` of the whole segment freed at once (so the model makes a
    segment of the recorded size); then its blocks in address order; at the end the inactive blocks are freed again.
    Entries carry ``"synthetic": true``; the real trace's later frees of the active blocks find them by address.

    >>> seg = {"device": 0, "address": 4096, "total_size": 20 << 20, "stream": 0, "segment_type": "large",
    ...        "blocks": [{"address": 4096, "size": 4 << 20, "state": "active_allocated"},
    ...                   {"address": 4096 + (4 << 20), "size": 16 << 20, "state": "inactive"}]}
    >>> [e["action"] for e in preamble([seg])[0]]  # doctest: +NORMALIZE_WHITESPACE
    ['segment_alloc', 'alloc', 'free_requested', 'free_completed', 'alloc', 'alloc', 'free_requested',
     'free_completed']
    """
    out: dict[int, list[dict[str, Any]]] = {}
    inactive: dict[int, list[tuple[int, int, int]]] = {}

    def entry(device: int, action: str, addr: int, size: int, stream: int) -> None:
        out.setdefault(device, []).append({"action": action, "addr": addr, "size": size, "stream": stream,
                                           "synthetic": True})

    for seg in sorted(segments, key=lambda s: (s.get("device", 0), s["address"])):
        device, stream = int(seg.get("device", 0)), seg.get("stream", 0)
        entry(device, "segment_alloc", seg["address"], seg["total_size"], stream)
        if seg.get("segment_type") != "small" and seg["total_size"] > SMALL_SEGMENT:
            for action in ("alloc", "free_requested", "free_completed"):
                entry(device, action, seg["address"], seg["total_size"], stream)
        for b in sorted(seg.get("blocks", []), key=lambda b: b["address"]):
            entry(device, "alloc", b["address"], b["size"], stream)
            if b.get("state") not in ACTIVE:
                inactive.setdefault(device, []).append((b["address"], b["size"], stream))
    for device, blocks in inactive.items():  # freed last: no later segment's block may land in them
        for addr, size, stream in blocks:
            entry(device, "free_requested", addr, size, stream)
            entry(device, "free_completed", addr, size, stream)
    return out


def json_snapshot(raw: dict[str, Any], start: dict[str, Any] | None = None, max_entries: int | None = None,
                  meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-ready copy of ``torch.cuda.memory._snapshot()`` output ``raw``: segments and trace entries without
    ``frames`` (and other keys the replay does not read), each device's trace led by the ``preamble`` of ``start``
    (the snapshot when recording began); ``"vlmref"`` says what was done, and which device's history may have lost
    its oldest entries (as many entries as ``max_entries``: torch's ring buffer was full)."""
    traces = [[{k: e[k] for k in TRACE_KEYS if k in e} for e in entries] for entries in raw.get("device_traces", [])]
    recorded = [len(t) for t in traces]
    pre = preamble(start.get("segments", [])) if start else {}
    for device, entries in pre.items():
        while len(traces) <= device:
            traces.append([])
        traces[device] = entries + traces[device]
    full = [d for d, n in enumerate(recorded) if max_entries and n >= max_entries]
    info = {"schema": SNAPSHOT_SCHEMA, "stacks": "none: recorded with context=None, any frames stripped",
            "recorded_entries": {str(d): n for d, n in enumerate(recorded) if n},
            "preamble_entries": {str(d): len(e) for d, e in pre.items()},
            "max_entries": max_entries, "truncated_devices": full, **(meta or {})}
    doc = {"segments": [_segment(s) for s in raw.get("segments", [])], "device_traces": traces, "vlmref": info}
    if isinstance(raw.get("allocator_settings"), dict):
        doc["allocator_settings"] = _jsonable(raw["allocator_settings"])
    return doc


def write_snapshot(path: str | os.PathLike, doc: dict[str, Any]) -> Path:
    """Write ``doc`` as compact JSON atomically (temp file, then rename)."""
    path = Path(path)
    atomic_write_bytes(path, json.dumps(doc, separators=(",", ":")).encode("utf-8"), mode=0o644)
    return path


def replay_fields(path: str | os.PathLike, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """``vlmref memory replay PATH``'s figures per device (``cuda:<i>``) for the result record, or ``{"reason": ...}``
    when the file cannot be replayed (a truncated history, a trace error)."""
    from ..memory.allocator import AllocatorConfigError
    from ..memory.replay import TraceError, load_trace, replay_file, resolve_config

    try:
        trace = load_trace(path)
        info = json.loads(Path(path).read_text()).get("vlmref", {})
        if info.get("truncated_devices"):
            return {"reason": f"not replayed: the history of device(s) {info['truncated_devices']} filled torch's ring "
                              f"buffer ({info.get('max_entries')} entries; raise --snapshot_entries)"}
        config, source = resolve_config(None, dict(os.environ if environ is None else environ))
        report = replay_file(trace, config, source=source)
    except (TraceError, AllocatorConfigError) as err:
        return {"reason": f"not replayed: {err}"}
    per_device = {}
    for r in report["devices"]:
        c = r["segment_comparison"]
        per_device[f"cuda:{r['device']}"] = {
            "replay_peak_reserved_gib": round(r["peak_reserved_bytes"] / GIB, 4),
            "replay_peak_allocated_gib": round(r["peak_allocated_bytes"] / GIB, 4),
            "replay_segments_match": None if c is None else c["divergence"] is None,
            "segments": None if c is None else {k: c[k] for k in ("recorded", "replayed", "matching", "divergence")},
            "model_ooms": len(r["model_ooms"]), "notes": r["notes"]}
    return {"alloc_conf": report["alloc_conf"], "alloc_conf_source": source, "per_device": per_device,
            "notes": report["notes"], "reason": None}


def attach_replay(record: dict[str, Any], replay: dict[str, Any]) -> dict[str, Any]:
    """Put each device's replayed peak reserved (and segment match) next to its measured ``reserved_gib``, and the
    busiest device's at the top level (``replay_peak_reserved_gib``, ``replay_segments_match``)."""
    record["replay"] = replay
    rows = replay.get("per_device") or {}
    for dev, row in rows.items():
        measured = record["per_device"].get(dev)
        if measured is not None:
            measured["replay_peak_reserved_gib"] = row["replay_peak_reserved_gib"]
            measured["replay_segments_match"] = row["replay_segments_match"]
    peaks = [r["replay_peak_reserved_gib"] for r in rows.values()]
    matches = [r["replay_segments_match"] for r in rows.values() if r["replay_segments_match"] is not None]
    record["replay_peak_reserved_gib"] = max(peaks) if peaks else None
    record["replay_segments_match"] = all(matches) if matches else None
    return record


class SnapshotRecorder:
    """CUDA only: the allocator history between ``start()`` and ``stop()`` (``raw``, ``start_state``)."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.raw: dict[str, Any] | None = None
        self.start_state: dict[str, Any] | None = None
        self.error: str | None = None
        self.recording = False

    def start(self) -> None:
        import inspect

        import torch

        memory = torch.cuda.memory
        try:
            self.start_state = {"segments": memory._snapshot()["segments"]}  # before recording: no snapshot entry
            kwargs: dict[str, Any] = {"context": None, "stacks": "python", "max_entries": self.max_entries}
            if "clear_history" in inspect.signature(memory._record_memory_history).parameters:
                kwargs["clear_history"] = True
            memory._record_memory_history("all", **kwargs)
            self.recording = True
        except (AttributeError, TypeError, RuntimeError) as err:
            self.error = f"torch {torch.__version__} cannot record the allocator history: {err}"

    def stop(self) -> None:
        if not self.recording:
            return
        import torch

        try:
            self.raw = torch.cuda.memory._snapshot()
        except (AttributeError, TypeError, RuntimeError) as err:
            self.error = f"torch.cuda.memory._snapshot() failed: {err}"
        finally:
            torch.cuda.memory._record_memory_history(None)
            self.recording = False

    def document(self, meta: dict[str, Any] | None = None) -> dict[str, Any] | None:
        return None if self.raw is None else json_snapshot(self.raw, self.start_state, self.max_entries, meta)
