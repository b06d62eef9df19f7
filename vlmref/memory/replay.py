"""Replay a recorded CUDA allocation trace through vlmref's allocator model (``vlmref.memory.allocator``).

::

    from vlmref.memory.replay import load_trace, replay_trace
    trace = load_trace("snapshot.json")            # a JSON list of entries, or a whole JSON-encoded snapshot
    result = replay_trace(trace.devices[0], AllocatorConfig.from_conf_string("expandable_segments:True"))
    result.stats["peak_reserved_bytes"], result.comparison

The input is the entry format of ``torch.cuda.memory._snapshot()["device_traces"][i]`` (``torch/cuda/memory.py``,
``_snapshot``'s ``TraceEntry``): ``action``, ``addr``, ``size``, ``stream`` (``frames``, ``time_us``, ``device_free``,
``pool_id`` ... are ignored). Upstream records an ``alloc`` with the size the caller asked for (``orig_size`` in
``alloc_found_block``), and the frees with the block's ``requested_size``; the model rounds a request itself.

Replay rules: an ``alloc`` is a ``malloc`` of the model on the entry's stream; a block leaves ``allocated`` at its
``free_requested`` and returns to the pool at its ``free_completed`` (upstream's ``free`` / ``free_block``; a trace
without any ``free_completed`` frees at ``free_requested``). Trace addresses only name the allocations; the model has
its own. Recorded ``segment_free``/``segment_unmap`` entries that no new segment follows (``empty_cache()``, or the
release before an ``oom``) are replayed as ``empty_cache`` of the model; without a device limit the model can never
run out of memory, so releases the recording made before a new segment are replayed as ``empty_cache`` too, while with
``device_memory`` the model decides those itself. An ``oom`` entry releases the model's cache, as upstream's
``malloc`` does before it throws. An ``alloc`` the model cannot fit (``device_memory``) is reported and its later frees
are skipped. A free of an address the replay holds no allocation at is a ``TraceError`` naming the entry.

When the trace holds segment events (a real GPU recording), the model's new segments (``segment_alloc``; with
expandable segments ``segment_map``) are compared with the recorded ones in order: their size and the ``alloc`` entry
that caused them; the first pair that differs is the divergence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .allocator import IGNORED_OPTIONS, AllocatorConfig, AllocatorConfigError, Block, CachingAllocator, OutOfMemory

GROWTH = ("segment_alloc", "segment_map")
RELEASE = ("segment_free", "segment_unmap")
SEGMENT_ACTIONS = GROWTH + RELEASE
KNOWN_ACTIONS = ("alloc", "free_requested", "free_completed", "snapshot", "oom", "user_defined") + SEGMENT_ACTIONS
MiB, GiB = 1 << 20, 1 << 30


class TraceError(ValueError):
    """The file is not a trace this command can replay, or an entry contradicts the replay; one line, naming the
    file or the entry index."""


@dataclass
class Trace:
    """A loaded trace: ``devices`` maps a device index to its entries (a bare list is device 0)."""

    path: str
    form: str  # "entries" (a bare list) | "snapshot"
    devices: dict[int, list[dict]]
    recorded_conf: str | None = None  # a snapshot's allocator_settings["PYTORCH_CUDA_ALLOC_CONF"]


def load_trace(path: str | Path) -> Trace:
    """Read a JSON trace: a list of entries, or a dict with ``device_traces`` (a list per device) and ``segments``."""
    path = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise TraceError(f"cannot read {path}: {err.strerror or err}") from None
    if raw[:1] == b"\x80":
        raise TraceError(f"{path} is a pickle (torch.cuda.memory._dump_snapshot writes one); give it as JSON: "
                         f"json.dump(pickle.load(f), out)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        where = f" (line {err.lineno}: {err.msg})" if isinstance(err, json.JSONDecodeError) else ""
        raise TraceError(f"{path} is not JSON{where}; expected a list of trace entries or a memory snapshot") from None
    if isinstance(data, list):
        _check_entries(path, data, "")
        return Trace(path, "entries", {0: data})
    if isinstance(data, dict) and isinstance(data.get("device_traces"), list):
        devices = {}
        for d, entries in enumerate(data["device_traces"]):
            if not isinstance(entries, list):
                raise TraceError(f"{path}: device_traces[{d}] is a {type(entries).__name__}, not a list of entries")
            _check_entries(path, entries, f"device_traces[{d}]")
            if entries:
                devices[d] = entries
        settings = data.get("allocator_settings")
        conf = settings.get("PYTORCH_CUDA_ALLOC_CONF") if isinstance(settings, dict) else None
        return Trace(path, "snapshot", devices, conf if isinstance(conf, str) else None)
    kind = "an object without 'device_traces'" if isinstance(data, dict) else f"a {type(data).__name__}"
    raise TraceError(f"{path} is not an allocation trace: found {kind}; expected a list of trace entries or a "
                     f"snapshot with 'device_traces'")


def _check_entries(path: str, entries: list, where: str) -> None:
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("action"), str):
            at = f"{where} entry {i}" if where else f"entry {i}"
            raise TraceError(f"{path}: {at} is not a trace entry (expected an object with an 'action')")


def _int(entry: dict, key: str, i: int, default: int | None = None, signed: bool = False) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or (value < 0 and not signed):
        raise TraceError(f"entry {i} ({entry.get('action')}): {key!r} must be a non-negative integer, found "
                         f"{value!r}")
    return value


@dataclass
class Growth:
    """A new segment (or mapping): the entry index of the ``alloc`` it served, the action and its size."""

    entry: int
    action: str
    size: int

    def to_dict(self) -> dict:
        return {"entry": self.entry, "action": self.action, "size_bytes": self.size}


@dataclass
class ReplayResult:
    """The replay of one device's entries."""

    stats: dict
    entries: int
    allocs: int
    frees: int
    free_source: str  # free_completed | free_requested
    model_ooms: list[dict] = field(default_factory=list)
    recorded_ooms: list[dict] = field(default_factory=list)
    empty_cache_replayed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    comparison: dict | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        s = self.stats
        return {"peak_allocated_bytes": s["peak_allocated_bytes"], "peak_reserved_bytes": s["peak_reserved_bytes"],
                "peak_requested_bytes": s["peak_requested_bytes"], "final_allocated_bytes": s["allocated_bytes"],
                "final_reserved_bytes": s["reserved_bytes"], "final_segments": s["segments"],
                "segments_created": s["num_device_alloc"], "segments_released": s["num_device_free"],
                "entries": self.entries, "allocs": self.allocs, "frees": self.frees, "free_source": self.free_source,
                "model_ooms": self.model_ooms, "recorded_ooms": self.recorded_ooms,
                "empty_cache_replayed": self.empty_cache_replayed, "skipped_entries": self.skipped,
                "segment_comparison": self.comparison, "notes": self.notes}


class _Replay:
    def __init__(self, entries: list[dict], config: AllocatorConfig, device_memory: int | None) -> None:
        self.entries = entries
        self.limited = device_memory is not None
        self.hints: list[tuple[int, int]] = []  # (size, addr) of the recorded segment_alloc of the current alloc
        self.model = CachingAllocator(config, device_memory, segment_address=self._hint)
        self.use_completed = any(e["action"] == "free_completed" for e in entries)
        self.live: dict[int, Block] = {}
        self.lost: set[int] = set()  # trace addresses whose alloc the model could not fit
        self.group: list[tuple[int, str, int, int]] = []  # recorded segment entries since the last other entry
        self.recorded: list[Growth] = []
        self.replayed: list[Growth] = []
        self.counts = {f"recorded_{a}": 0 for a in SEGMENT_ACTIONS} | {f"replayed_{a}": 0 for a in SEGMENT_ACTIONS}
        self.result = ReplayResult({}, len(entries), 0, 0, "free_completed" if self.use_completed else
                                   "free_requested")

    def _hint(self, size: int, small: bool, stream: int) -> int | None:
        """The recorded address of the segment this alloc got, when the recording's new segment has the model's size
        (ties among equal blocks then fall as in the recording)."""
        for k, (s, addr) in enumerate(self.hints):
            if s == size:
                del self.hints[k]
                return addr
        return None

    def _events(self, entry: int) -> None:
        for ev in self.model.take_events():
            self.counts[f"replayed_{ev.action}"] += 1
            if ev.action in GROWTH:
                self.replayed.append(Growth(entry, ev.action, ev.size))

    def _close_group(self, i: int, action: str) -> None:
        """The recorded segment entries before entry ``i``: growth is the alloc's; releases with no growth after them
        (or, without a device limit, any) were an ``empty_cache`` / the OOM release, replayed as such."""
        group, self.group = self.group, []
        growth = [g for g in group if g[1] in GROWTH]
        released = any(g[1] in RELEASE for g in group)
        if released and (not growth or not self.limited or action != "alloc"):
            self.model.empty_cache()
            self.result.empty_cache_replayed += 1
            self._events(i)
        if action == "alloc":
            self.recorded += [Growth(i, a, size) for _, a, _, size in growth]
            self.hints = [(size, addr) for _, a, addr, size in growth if a == "segment_alloc"]
        elif growth:
            first, last = growth[0][0], growth[-1][0]
            where = f"entry {first}" if first == last else f"entries {first}..{last}"
            self.result.notes.append(f"{where}: recorded segment growth not followed by an alloc (not compared)")

    def run(self) -> ReplayResult:
        res = self.result
        for i, e in enumerate(self.entries):
            action = e["action"]
            if action in SEGMENT_ACTIONS:
                self.counts[f"recorded_{action}"] += 1
                self.group.append((i, action, _int(e, "addr", i), _int(e, "size", i)))
                continue
            if action not in KNOWN_ACTIONS:
                res.skipped[action] = res.skipped.get(action, 0) + 1
                continue
            self._close_group(i, action)
            if action == "alloc":
                self._alloc(i, e)
            elif action in ("free_requested", "free_completed"):
                self._free(i, e, action)
            elif action == "oom":
                res.recorded_ooms.append({"entry": i, "size_bytes": e.get("size")})
                self.model.release_cached_blocks()
                self._events(i)
            else:
                res.skipped[action] = res.skipped.get(action, 0) + 1
        self._close_group(len(self.entries), "end")
        res.stats = self.model.stats()
        if any(self.counts[f"recorded_{a}"] for a in SEGMENT_ACTIONS):
            res.comparison = compare_growth(self.recorded, self.replayed) | {"counts": self.counts}
            self._mode_note()
        return res

    def _mode_note(self) -> None:
        recorded_map = self.counts["recorded_segment_map"] > 0
        if recorded_map and not self.model.config.expandable_segments:
            self.result.notes.append("the recording has segment_map entries (expandable segments); replay with "
                                     "--alloc_conf expandable_segments:True to compare like with like")
        elif self.counts["recorded_segment_alloc"] and self.model.config.expandable_segments:
            self.result.notes.append("the recording has segment_alloc entries (no expandable segments) but this "
                                     "replay uses expandable_segments:True")

    def _alloc(self, i: int, e: dict) -> None:
        addr, size, stream = _int(e, "addr", i), _int(e, "size", i), _int(e, "stream", i, 0, signed=True)
        old = self.live.get(addr)
        if old is not None and (old.allocated or old.pending):
            raise TraceError(f"entry {i}: alloc at {addr:#x}, where the allocation of entry "
                             f"{self._where(addr, i)} is not freed yet")
        self.result.allocs += 1
        self.lost.discard(addr)
        try:
            self.live[addr] = self.model.malloc(size, stream)
        except OutOfMemory as oom:
            self.live.pop(addr, None)
            self.lost.add(addr)
            self.result.model_ooms.append({"entry": i, "size_bytes": size, "allocated_bytes": oom.allocated,
                                           "reserved_bytes": oom.reserved})
        self.hints = []
        self._events(i)

    def _where(self, addr: int, before: int) -> str:
        for j in range(before - 1, -1, -1):
            e = self.entries[j]
            if e["action"] == "alloc" and e.get("addr") == addr:
                return str(j)
        return "?"

    def _free(self, i: int, e: dict, action: str) -> None:
        addr = _int(e, "addr", i)
        if addr in self.lost:
            if action == "free_completed" or not self.use_completed:
                self.lost.discard(addr)
            return
        if action == "free_requested" and not self.use_completed:
            action = "free_both"
        block = self.live.get(addr)
        if block is None or (action == "free_requested" and not block.allocated):
            what = "no allocation" if block is None else "an allocation already freed"
            raise TraceError(f"entry {i}: {e['action']} of {addr:#x}, where the replay has {what} (the trace "
                             f"starts after its alloc, or the entries are out of order)")
        if action == "free_requested":
            self.model.request_free(block)
            return
        del self.live[addr]
        self.result.frees += 1
        if block.allocated:
            self.model.free(block)
        elif block.pending:
            self.model.complete_free(block)
        # else: the model completed it already (a release synchronises waiting frees)
        self._events(i)


def replay_trace(entries: list[dict], config: AllocatorConfig | None = None,
                 device_memory: int | None = None) -> ReplayResult:
    """Replay one device's trace entries through a fresh ``CachingAllocator``."""
    return _Replay(entries, config or AllocatorConfig(), device_memory).run()


def compare_growth(recorded: list[Growth], replayed: list[Growth]) -> dict:
    """The recorded and replayed new segments in order: how many agree from the start, and the first pair that
    differs (in size, action or the alloc entry that caused it), or one list ending early."""
    same = 0
    for r, m in zip(recorded, replayed, strict=False):
        if (r.entry, r.action, r.size) != (m.entry, m.action, m.size):
            break
        same += 1
    out: dict[str, Any] = {"recorded": len(recorded), "replayed": len(replayed), "matching": same,
                           "divergence": None}
    if same < max(len(recorded), len(replayed)):
        r = recorded[same] if same < len(recorded) else None
        m = replayed[same] if same < len(replayed) else None
        entries = [g.entry for g in (r, m) if g is not None]
        out["divergence"] = {"segment": same, "entry": min(entries),
                             "expected": r.to_dict() if r else None, "replayed": m.to_dict() if m else None}
    return out


def resolve_config(flag: str | None, environ: dict[str, str]) -> tuple[AllocatorConfig, str]:
    """The options of ``--alloc_conf`` (over the environment), else ``PYTORCH_CUDA_ALLOC_CONF``, else
    ``PYTORCH_ALLOC_CONF`` (upstream's order of the variables); and where they came from."""
    for source, text in (("--alloc_conf", flag), ("PYTORCH_CUDA_ALLOC_CONF", environ.get("PYTORCH_CUDA_ALLOC_CONF")),
                         ("PYTORCH_ALLOC_CONF", environ.get("PYTORCH_ALLOC_CONF"))):
        if text is not None:
            try:
                return AllocatorConfig.from_conf_string(text), source
            except AllocatorConfigError as err:
                raise AllocatorConfigError(f"{source}: {err}") from None
    return AllocatorConfig(), "defaults"


def replay_file(trace: Trace, config: AllocatorConfig, *, device: int | None = None,
                device_memory: int | None = None, source: str = "defaults") -> dict:
    """Replay the trace's devices (or ``device``) and report them; the top-level figures are the busiest device's
    (highest peak reserved)."""
    if device is not None:
        if trace.form == "entries" and device != 0:
            raise TraceError(f"--device {device}: {trace.path} is a bare list of entries (device 0), not a snapshot")
        if device not in trace.devices:
            have = ", ".join(map(str, trace.devices)) or "none"
            raise TraceError(f"--device {device}: {trace.path} has no entries for it (devices with entries: {have})")
    chosen = [device] if device is not None else sorted(trace.devices)
    if not chosen:
        raise TraceError(f"{trace.path}: the snapshot's device_traces hold no entries (was the memory history "
                         f"recorded? torch.cuda.memory._record_memory_history())")
    per_device = []
    for d in chosen:
        result = replay_trace(trace.devices[d], config, device_memory)
        per_device.append({"device": d, **result.to_dict()})
    busiest = max(per_device, key=lambda r: (r["peak_reserved_bytes"], -r["device"]))
    notes = []
    if trace.recorded_conf is not None and trace.recorded_conf != config.conf:
        notes.append(f"the snapshot was recorded with PYTORCH_CUDA_ALLOC_CONF={trace.recorded_conf!r}; this replay "
                     f"used {config.conf!r} ({source})")
    for key in config.ignored:
        notes.append(f"option {key} is accepted and not modelled ({IGNORED_OPTIONS[key]})")
    keys = ("peak_allocated_bytes", "peak_reserved_bytes", "peak_requested_bytes", "final_allocated_bytes",
            "final_reserved_bytes", "final_segments")
    return {"trace": trace.path, "form": trace.form, "device": busiest["device"],
            **{k: busiest[k] for k in keys},
            "alloc_conf": config.conf, "alloc_conf_source": source, "options": config.to_dict(),
            "device_memory_bytes": device_memory, "recorded_alloc_conf": trace.recorded_conf,
            "devices": per_device, "notes": notes}


def _size(n: int) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / MiB:.2f} MiB"


def format_report(report: dict) -> str:
    """The text summary of ``replay_file``'s report."""
    conf = report["alloc_conf"] or "none (torch's defaults)"
    n = len(report["devices"])
    lines = [f"{report['trace']}: {n} device{'s' if n != 1 else ''} replayed ({report['form']}); allocator options: "
             f"{conf} [{report['alloc_conf_source']}]"
             + (f"; device memory {_size(report['device_memory_bytes'])}" if report["device_memory_bytes"] else "")]
    for r in report["devices"]:
        lines.append(f"device {r['device']}: {r['entries']} entries, {r['allocs']} allocs, {r['frees']} frees "
                     f"(returned to the pool at {r['free_source']})")
        lines.append(f"  peak allocated {_size(r['peak_allocated_bytes'])}, peak reserved "
                     f"{_size(r['peak_reserved_bytes'])}; at the end {_size(r['final_allocated_bytes'])} allocated, "
                     f"{_size(r['final_reserved_bytes'])} reserved in {r['final_segments']} segment(s)")
        if r["empty_cache_replayed"]:
            lines.append(f"  recorded releases replayed as empty_cache: {r['empty_cache_replayed']}")
        if r["model_ooms"]:
            first = r["model_ooms"][0]
            lines.append(f"  OUT OF MEMORY in the model: {len(r['model_ooms'])} alloc(s), first at entry "
                         f"{first['entry']} ({_size(first['size_bytes'])} with {_size(first['reserved_bytes'])} "
                         f"reserved)")
        if r["recorded_ooms"]:
            lines.append(f"  oom entries in the recording: {len(r['recorded_ooms'])}, the first at entry "
                         f"{r['recorded_ooms'][0]['entry']}")
        c = r["segment_comparison"]
        if c is not None:
            head = f"  segments vs the recording: {c['recorded']} recorded, {c['replayed']} replayed, " \
                   f"{c['matching']} matching in order"
            d = c["divergence"]
            if d is None:
                lines.append(head + "; no divergence")
            else:
                def show(g: dict | None) -> str:
                    return "none" if g is None else f"{g['action']} {_size(g['size_bytes'])} for entry {g['entry']}"
                lines.append(head + f"; they part at entry {d['entry']} (new segment #{d['segment']}): recorded "
                                    f"{show(d['expected'])}, replayed {show(d['replayed'])}")
        if r["skipped_entries"]:
            lines.append("  not replayed: " + ", ".join(f"{k} x{v}" for k, v in sorted(r["skipped_entries"].items())))
        lines += [f"  note: {note}" for note in r["notes"]]
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)
