"""Run memory scenarios for real and measure them: peak memory per device, tokens/s and samples/s.

CUDA: ``reset_peak_memory_stats``, the model built on its GPU (``device_map_for`` + ``dispatch_model`` when the scenario
splits it over ``devices_per_process`` GPUs), ``run_workload``, then per device ``max_memory_allocated``,
``max_memory_reserved`` and nvidia-smi-style used memory (``mem_get_info``: total - free, so the CUDA context and any
other process on the GPU count). CPU (``--device cpu``, with ``--tiny`` a smoke test of the same path): reserved = peak
RSS above the RSS before the scenario (``/proc/self/clear_refs`` resets the high-water mark), allocated = the peak of
vlmref's ``PeakTracker`` (torch's MemTracker) over the workload.

Scenarios with ``world_size > 1`` run only under ``torchrun --nproc_per_node world_size`` (DDP, or DeepSpeed ZeRO
with ms-swift's config); each rank measures its own GPUs, rank 0 gathers them (per device keys ``rank<r>/cuda:<i>``).

>>> items = documented_items(["qwen-vl-chat/infer/1gpu"])
>>> items[0].key, items[0].documented_gib
('qwen-vl-chat/infer/1gpu', 24.0)
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..memory.scenario import MemoryScenario

GIB = 1 << 30
MODULE = "vlmref.cli.bench"
CUDA_MEASURE = ("torch.cuda.max_memory_allocated / max_memory_reserved per device since reset_peak_memory_stats "
                "(after gc, the cuBLAS workspaces and empty_cache released); nvidia_smi = mem_get_info total - free "
                "after the workload (CUDA context and other processes included)")
CPU_MEASURE = ("reserved = peak RSS above the RSS before the scenario (VmHWM after /proc/self/clear_refs); "
               "allocated = PeakTracker (torch MemTracker) tensor peak over the workload (single process only)")


@dataclass(frozen=True)
class BenchItem:
    key: str
    scenario: MemoryScenario
    documented_gib: float | None = None


def documented_items(only: Iterable[str] | None = None) -> list[BenchItem]:
    """The 16 documented footprints (``only``: just these keys, an unknown key is a ``KeyError``)."""
    from ..memory.documented import select_documented

    return [BenchItem(d.key, d.scenario, d.documented_gib) for d in select_documented(only)]


def scenario_argv(s: MemoryScenario) -> list[str]:
    """The ``vlmref bench`` flags that reproduce ``s`` (fields at their default are left out)."""
    argv = ["--model_type", s.model_type, "--mode", s.mode]
    default = MemoryScenario(s.model_type, s.mode)
    for name in MemoryScenario.__dataclass_fields__:
        value = getattr(s, name)
        if name in ("model_type", "mode", "notes") or value == getattr(default, name):
            continue
        if name == "image_size":
            argv += ["--image_size", f"{value[0]}x{value[1]}"]
        elif name == "lora_target_modules":
            argv += ["--lora_target_modules", *value]
        elif isinstance(value, bool):
            argv += [f"--{name}", "true" if value else "false"]
        elif name == "deepspeed":  # the scenario's zero2/zero3 -> vlmref sft's name
            argv += ["--deepspeed", f"default-{value}"]
        else:
            argv += [f"--{name}", str(value)]
    return argv


def torchrun_command(item: BenchItem, documented: bool, device: str, tiny: bool) -> str:
    what = ["--documented", "--only", item.key] if documented else scenario_argv(item.scenario)
    extra = ["--device", device] + (["--tiny"] if tiny else [])
    return " ".join(["torchrun", "--nproc_per_node", str(item.scenario.world_size), "-m", MODULE, *what, *extra,
                     "--out", "bench-torchrun.json"])


def skip_reason(s: MemoryScenario, device: str, world_size: int, local_rank: int, cuda_count: int) -> str | None:
    """Why this process cannot run ``s`` (None: it can)."""
    if s.world_size != world_size:
        if s.world_size > 1:
            return f"skipped: run under torchrun --nproc_per_node {s.world_size} (this process has WORLD_SIZE={world_size})"
        return f"skipped: a single-process scenario, run without torchrun (WORLD_SIZE={world_size})"
    if device == "cuda":
        need = (local_rank + 1) * s.devices_per_process
        if need > cuda_count:
            return (f"skipped: needs {s.devices_per_process} GPU(s) per process ({need} on this node for local rank "
                    f"{local_rank}), {cuda_count} visible")
    return None


# ---- memory probes ---------------------------------------------------------------------------------------------------
def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssProbe:
    """Peak resident set size of this process between ``start()`` and ``peak_bytes()``."""

    def start(self) -> RssProbe:
        import ctypes
        import resource

        gc.collect()
        try:  # hand memory freed by earlier scenarios back to the OS, or reusing it would not show as RSS growth
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # Linux >= 4.0: reset the RSS high-water mark to the current RSS
            self.reset = True
        except OSError:
            self.reset = False
        rss = _proc_status_kib("VmRSS")
        self.before = (rss if rss is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
        return self

    def peak_bytes(self) -> int:
        import resource

        hwm = _proc_status_kib("VmHWM") if self.reset else None
        return (hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# ---- one scenario ----------------------------------------------------------------------------------------------------
def _ensure_process_group(cuda: bool) -> None:
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if cuda else "gloo")


def _place_model(s: MemoryScenario, tiny: bool, cuda_devices: list[int]) -> tuple[Any, Any]:
    """(model, device of its inputs): built on meta, given empty storage on its device(s), fast-initialised there
    (``bench.build``), then prepared; over several GPUs split as ``from_pretrained(device_map='auto')`` does
    (accelerate's balanced map of the meta model, each tensor made on its GPU, then ``dispatch_model``'s hooks)."""
    import torch

    from ..memory.setup import device_map_for, prepare
    from .build import build_meta, device_lookup, fast_init_, materialize

    model = build_meta(s, tiny)
    if len(cuda_devices) <= 1:
        device = torch.device(f"cuda:{cuda_devices[0]}" if cuda_devices else "cpu")
        fast_init_(materialize(model, device))
        return prepare(model, s), device
    from accelerate import dispatch_model

    total = torch.cuda.mem_get_info(cuda_devices[0])[1]
    local = device_map_for(model, len(cuda_devices), total)
    device_map = {name: cuda_devices[int(d)] for name, d in local.items()}
    fast_init_(materialize(model, device_lookup(device_map)))
    model = prepare(model, s)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    dispatch_model(base, device_map=device_map)
    return model, torch.device(f"cuda:{cuda_devices[0]}")


def _deepspeed_engine(model: Any, s: MemoryScenario, steps: int, world_size: int, cuda: bool) -> Any:
    import deepspeed

    from ..memory.setup import sft_arguments
    from ..training.deepspeed_config import fill_deepspeed_config

    args = sft_arguments(s)  # vlmref sft's resolved flags: the shipped default-zero2/3 config, lr, clipping, dtype
    config = fill_deepspeed_config(args.deepspeed_config, args, model, steps, world_size, cpu=not cuda,
                                   log=lambda message: None)
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    params = [p for p in model.parameters() if p.requires_grad]
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=params, config=config)
    return engine


def _run_deepspeed(engine: Any, batch: dict[str, Any], steps: int, cuda: bool) -> Any:
    """``steps`` of ``vlmref sft``'s ``training.train_step`` through the DeepSpeed engine (one micro-batch each)."""
    import torch

    from ..memory.workload import WorkloadStats, _tokens
    from ..training.step import train_step

    stats = WorkloadStats()
    for _ in range(steps):
        start = time.perf_counter()
        train_step(engine.module, [batch], optimizer=None, scheduler=None, max_grad_norm=0.0, engine=engine,
                   host_reads=False)
        if cuda:
            torch.cuda.synchronize()
        stats.steps.append({"seconds": time.perf_counter() - start, "tokens": _tokens(batch),
                            "samples": int(batch["input_ids"].shape[0])})
    return stats


def throughput(all_stats: list[Any]) -> tuple[float | None, float | None]:
    """tokens/s, samples/s: one workload -> its steps without the first (warm-up); several (infer ``--steps``) -> the
    later runs' decode steps."""
    if len(all_stats) == 1:
        return all_stats[0].rate("tokens"), all_stats[0].rate("samples")
    steps = [st for stats in all_stats[1:] for st in stats.steps[1:]]
    seconds = sum(st["seconds"] for st in steps)
    if seconds <= 0:
        return None, None
    return sum(st["tokens"] for st in steps) / seconds, sum(st["samples"] for st in steps) / seconds


def measure(s: MemoryScenario, device: str, tiny: bool = False, steps: int | None = None,
            rank: int = 0, local_rank: int = 0, world_size: int = 1, recorder: Any = None) -> dict[str, Any]:
    """Run ``s`` once in this process and return the measured fields of a result record (raises on OOM);
    ``recorder`` (CUDA: a ``snapshot.SnapshotRecorder``) starts right after the peak statistics are reset, before the
    model is built; the caller stops it."""
    import torch

    from ..memory.attention import eager_attention
    from ..memory.inputs import batch_positions, build_batch
    from ..memory.setup import DTYPES
    from ..memory.tracker import PeakTracker, batch_tensors
    from ..memory.workload import STEPS, run_infer, run_sft
    from ..utils import to_device

    cuda = device == "cuda"
    distributed = s.world_size > 1
    cuda_devices = [local_rank * s.devices_per_process + i for i in range(s.devices_per_process)] if cuda else []
    prefix = f"rank{rank}/" if distributed else ""
    sft_steps = steps or STEPS
    if cuda:
        torch.cuda.set_device(cuda_devices[0])
        _clear_cuda()
        for i in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(i)
        if recorder is not None:
            recorder.start()
    else:
        probe = RssProbe().start()
    if distributed:
        _ensure_process_group(cuda)
    model, input_device = _place_model(s, tiny, cuda_devices)
    batch = {k: to_device(v, input_device, DTYPES[s.dtype]) for k, v in build_batch(s).items()}
    tracker = PeakTracker() if not cuda and not distributed else None
    if s.deepspeed:
        runner = _deepspeed_engine(model, s, sft_steps, world_size, cuda)
    elif distributed and s.mode == "sft":
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters as vlmref sft (LLaVA/Yi-VL leave the last CLIP layer unused)
        runner = DistributedDataParallel(model, device_ids=cuda_devices if len(cuda_devices) == 1 else None,
                                         find_unused_parameters=True)
    else:
        runner = model

    def on_phase(name: str) -> None:
        if tracker is not None:
            tracker.phase = name
            if name in ("forward", "prefill", "decode"):
                tracker.reset_mod_stats()  # MemTracker refuses a module's second call otherwise; the peak is kept

    all_stats = []
    if tracker is not None:
        tracker.track_external(model, *batch_tensors(batch))
        tracker.__enter__()
    attention = eager_attention(s.attention == "eager")
    attention.__enter__()
    try:
        if s.deepspeed:
            all_stats.append(_run_deepspeed(runner, batch, sft_steps, cuda))
        elif s.mode == "sft":
            all_stats.append(run_sft(model, batch, s, on_phase, steps=sft_steps,
                                     ddp=None if runner is model else runner))
        else:
            for _ in range(steps or 1):
                all_stats.append(run_infer(runner, batch, s, on_phase))
    finally:
        attention.__exit__(None, None, None)
        if tracker is not None:
            tracker.__exit__(None, None, None)
    per_device: dict[str, dict[str, Any]] = {}
    if cuda:
        for d in cuda_devices:
            free, total = torch.cuda.mem_get_info(d)
            per_device[f"{prefix}cuda:{d}"] = {
                "allocated_gib": round(torch.cuda.max_memory_allocated(d) / GIB, 4),
                "reserved_gib": round(torch.cuda.max_memory_reserved(d) / GIB, 4),
                "nvidia_smi_gib": round((total - free) / GIB, 4), "total_gib": round(total / GIB, 3)}
    else:
        peak = probe.peak_bytes()
        per_device[f"{prefix}cpu"] = {
            "allocated_gib": None if tracker is None else round(tracker.peak_bytes() / GIB, 4),
            "reserved_gib": round(max(peak - probe.before, 0) / GIB, 4), "nvidia_smi_gib": None,
            "peak_rss_gib": round(peak / GIB, 4), "peak_phase": None if tracker is None else tracker.peak_phase.get("cpu")}
    tokens, samples = throughput(all_stats)
    allocated = [d["allocated_gib"] for d in per_device.values() if d["allocated_gib"] is not None]
    return {"per_device": per_device, "peak_reserved_gib": max(d["reserved_gib"] for d in per_device.values()),
            "peak_allocated_gib": max(allocated) if allocated else None,
            "tokens_per_second": None if tokens is None else round(tokens, 3),
            "samples_per_second": None if samples is None else round(samples, 4),
            "positions": batch_positions(batch), "measure": CUDA_MEASURE if cuda else CPU_MEASURE,
            "steps": [len(st.steps) for st in all_stats]}


def _clear_cuda() -> None:
    """Start a scenario from an empty allocator, as a fresh process would: unreferenced tensors collected, the cuBLAS
    workspaces (kept per handle and stream; the scenario's first GEMM allocates them again) and the cached segments
    released."""
    import torch

    gc.collect()
    clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear_workspaces is not None:
        clear_workspaces()
    torch.cuda.empty_cache()


def _release(cuda: bool) -> None:
    gc.collect()
    if cuda:
        import torch

        torch.cuda.empty_cache()


def _merge_ranks(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Rank 0's view of one distributed scenario: devices side by side, peaks = max, rates = sum over ranks."""
    out = dict(records[0])
    order = ["ok", "skipped", "oom", "error"]
    out["status"] = max((r["status"] for r in records), key=order.index)
    out["message"] = "; ".join(f"rank{i}: {r['message']}" for i, r in enumerate(records) if r.get("message")) or None
    out["per_device"] = {k: v for r in records for k, v in (r.get("per_device") or {}).items()}
    for key, combine in (("peak_reserved_gib", max), ("peak_allocated_gib", max), ("tokens_per_second", sum),
                         ("samples_per_second", sum)):
        values = [r[key] for r in records if r.get(key) is not None]
        out[key] = round(combine(values), 4) if values and out["status"] == "ok" else None
    return out


@dataclass
class RunExtras:
    """What a run adds to each record it measures: ``predictor`` (a ``predict.Predictor``: the record's
    ``predicted``), ``out_dir`` (CUDA, one process: the allocator snapshot ``<out_dir>/<key>.snapshot.json`` and its
    replay next to the measurement; on CPU the record says why there is none)."""

    predictor: Any = None
    out_dir: Path | None = None
    snapshot_entries: int = 3_000_000


def _skip(item: BenchItem, device: str, documented: bool, tiny: bool) -> str | None:
    import torch

    from ..training.dist import get_dist_setting

    dist = get_dist_setting()
    reason = skip_reason(item.scenario, device, dist.world_size, dist.local_rank,
                         torch.cuda.device_count() if device == "cuda" else 0)
    if reason is not None and item.scenario.world_size > 1 and item.scenario.world_size != dist.world_size:
        reason += f"; e.g. {torchrun_command(item, documented, device, tiny)}"
    return reason


def _recorder(item: BenchItem, device: str, extras: RunExtras | None) -> tuple[Any, dict[str, Any] | None]:
    """(the scenario's ``SnapshotRecorder`` or None, the record's ``snapshot`` field so far)."""
    if extras is None or extras.out_dir is None:
        return None, None
    if device != "cuda":
        return None, {"file": None, "reason": f"no allocator snapshot on {device}: torch.cuda.memory._snapshot() "
                                              "records the CUDA caching allocator only"}
    if item.scenario.world_size > 1:
        return None, {"file": None, "reason": "no allocator snapshot under torchrun (world_size > 1)"}
    from .snapshot import SnapshotRecorder

    return SnapshotRecorder(extras.snapshot_entries), {"file": None, "reason": None}


def _save_snapshot(record: dict[str, Any], item: BenchItem, recorder: Any, out_dir: Path) -> None:
    """Write the recorder's snapshot as JSON and put its replay next to the measurement (failures: a reason)."""
    from .snapshot import attach_replay, replay_fields, snapshot_filename, write_snapshot

    snap = record["snapshot"]
    if recorder.error or recorder.raw is None:
        snap["reason"] = recorder.error or "no snapshot taken"
        return
    start = time.perf_counter()
    try:
        doc = recorder.document({"key": item.key, "scenario": item.scenario.to_dict(), "status": record["status"]})
        recorder.raw = None  # a long history is large: keep one copy at a time
        path = write_snapshot(out_dir / snapshot_filename(item.key), doc)
        snap.update(file=path.name, entries=doc["vlmref"]["recorded_entries"],
                    preamble_entries=doc["vlmref"]["preamble_entries"])
        del doc
        replay = replay_fields(path)
        attach_replay(record, replay)
        snap["reason"] = replay.get("reason")
    except Exception as err:  # noqa: BLE001 - the measurement stays, with the reason its snapshot is missing
        snap["reason"] = f"snapshot failed: {type(err).__name__}: {err}"
    snap["seconds"] = round(time.perf_counter() - start, 2)


def run_item(item: BenchItem, device: str, tiny: bool = False, steps: int | None = None,
             documented: bool = False, extras: RunExtras | None = None) -> dict[str, Any]:
    """One result record; OOM and other failures become ``status`` "oom" / "error" with the message."""
    import torch

    from ..training.dist import all_gather_object, get_dist_setting

    dist = get_dist_setting()
    cuda = device == "cuda"
    record: dict[str, Any] = {"key": item.key, "scenario": item.scenario.to_dict(), "status": "ok", "per_device": {},
                              "peak_reserved_gib": None, "peak_allocated_gib": None, "tokens_per_second": None,
                              "samples_per_second": None, "documented_gib": item.documented_gib, "message": None}
    predictor = extras.predictor if extras is not None else None
    if predictor is not None:
        record["predicted"] = None
    reason = _skip(item, device, documented, tiny)
    if reason is not None:
        record.update(status="skipped", message=reason)
        return record
    recorder, snapshot = _recorder(item, device, extras)
    if snapshot is not None:
        record.update(snapshot=snapshot, replay_peak_reserved_gib=None, replay_segments_match=None)
    start = time.perf_counter()
    try:
        record.update(measure(item.scenario, device, tiny, steps, dist.rank, dist.local_rank, dist.world_size,
                              recorder=recorder))
    except torch.cuda.OutOfMemoryError as err:
        record.update(status="oom", message=f"CUDA out of memory: {str(err).splitlines()[0]}")
    except MemoryError as err:
        record.update(status="oom", message=f"MemoryError: {err}")
    except Exception as err:  # noqa: BLE001 - one failing scenario must not lose the others' results
        record.update(status="error", message=f"{type(err).__name__}: {err}")
    finally:
        if recorder is not None:
            recorder.stop()
        _release(cuda)
    record["wall_seconds"] = round(time.perf_counter() - start, 2)
    if recorder is not None:
        _save_snapshot(record, item, recorder, extras.out_dir)
    if item.scenario.world_size > 1:
        record = _merge_ranks(all_gather_object(record))
    if predictor is not None and dist.is_master:
        record["predicted"] = predictor.get(item.key, item.scenario)
    return record


def _summary(rec: dict[str, Any]) -> list[str]:
    """The log lines of one finished record."""
    lines = []
    if rec["status"] == "ok":
        tps = "-" if rec["tokens_per_second"] is None else f"{rec['tokens_per_second']:.1f}"
        lines.append(f"    ok: {rec['peak_reserved_gib']:.3f} GiB reserved (peak over devices), {tps} tokens/s, "
                     f"{rec['wall_seconds']} s")
    else:
        msg = rec["message"] or ""
        lines.append(f"    {msg}" if msg.startswith(rec["status"]) else f"    {rec['status']}: {msg}")
    pred = rec.get("predicted")
    if pred:
        lines.append(f"    predicted: {pred['reserved_gib']:.3f} GiB reserved, {pred['nvidia_smi_gib']:.3f} GiB "
                     f"nvidia-smi" if pred.get("error") is None else f"    prediction failed: {pred['error']}")
    snap = rec.get("snapshot")
    if snap and snap.get("file"):
        replay = rec.get("replay_peak_reserved_gib")
        match = {True: "segments match", False: "segments differ", None: "no segments to compare"}[
            rec.get("replay_segments_match")]
        lines.append(f"    snapshot {snap['file']}: " + (f"replay {replay:.3f} GiB reserved ({match})"
                                                         if replay is not None else str(snap.get("reason"))))
    return lines


def run_items(items: list[BenchItem], device: str, tiny: bool = False, steps: int | None = None,
              documented: bool = False, log: Callable[[str], None] = print,
              extras: RunExtras | None = None) -> list[dict[str, Any]]:
    """Every item in order, logging a few lines each; with a background predictor every prediction is queued first."""
    from ..training.dist import get_dist_setting

    predictor = extras.predictor if extras is not None else None
    if predictor is not None and get_dist_setting().is_master:
        for item in items:
            if _skip(item, device, documented, tiny) is None:
                predictor.submit(item.key, item.scenario)
    results = []
    for i, item in enumerate(items, 1):
        label = item.scenario.label()
        log(f"[{i}/{len(items)}] {item.key}" + ("" if label == item.key else f": {label}"))
        rec = run_item(item, device, tiny, steps, documented, extras)
        for line in _summary(rec):
            log(line)
        results.append(rec)
    return results
