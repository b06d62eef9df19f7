"""Predict a scenario's peak GPU memory per device without a GPU: trace vlmref's full-size model under
``FakeTensorMode`` with torch's ``MemTracker`` (``tracker.PeakTracker``), then lay the traced peak out over the
scenario's devices.

What is traced (every tensor the workload creates, at its real size, none allocated): weights in the scenario's
dtype, LoRA adapters, gradients, AdamW states (torch's foreach step, its temporaries included), activations saved
for backward with or without gradient checkpointing, logits and loss, the KV cache, image features.

What is composed on top, per device (stated, public, never fitted):

* ``device_map`` over k GPUs (one process): each device holds the parameters / buffers / gradients / optimizer states
  of the layers accelerate's balanced map puts on it; the traced activations and temporaries are counted in full on
  every device (an upper bound: the logits live on the last device, the vision tower's activations on the first);
* DDP (``world_size`` > 1, no DeepSpeed): one more gradient-sized buffer per rank (``DistributedDataParallel``'s
  reducer buckets with its default ``gradient_as_bucket_view=False``);
* DeepSpeed ZeRO-2 / ZeRO-3: the traced forward + backward minus its full gradients (and, for ZeRO-3, its full
  parameters), plus DeepSpeed's own model-state accounting (``estimate_zero2/3_model_states_mem_needs``): 16-bit
  gradient + fp32 gradient + fp32 master weight + Adam m and v = 18 bytes per trainable parameter / world size,
  ZeRO-3 also 2 bytes per parameter / world size and 4 bytes per parameter of the largest layer; plus the
  ``reduce_bucket_size`` and ``allgather_bucket_size`` buffers of ms-swift's default-zero2 (2e8 elements each);
* ``reserved`` = ``allocated`` + what the caching allocator holds above it: the trace's own allocation stream (every
  storage in order, ``tracker.PeakTracker(record=True)``) replayed through vlmref's model of PyTorch's caching
  allocator (``allocator.py``, default options: block rounding, segments, splitting, caching) gives the peak reserved
  of the one-device run; its excess over the traced peak is added to each device in proportion to the device's share
  of the traced bytes (all of it for one device; an approximation for rows composed from the trace: device_map
  shares, DDP buckets and ZeRO partitions are not replayed themselves);
  the cuBLAS workspaces (``scenario.CUBLAS_WORKSPACE_BYTES``, one per GEMM thread) are allocated and replayed with
  the rest; ``nvidia_smi`` = reserved + the CUDA context (``scenario.CUDA_CONTEXT_BYTES``) + NCCL's buffers for a
  data-parallel group (``scenario.NCCL_BYTES``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..models.info import kv_cache_bytes_per_token
from .attention import eager_attention
from .inputs import build_batch, encode_sample, sample_shape, scenario_tokenizer
from .legacy import legacy_stack
from .scenario import (
    CUBLAS_WORKSPACE_BYTES,
    CUDA_CONTEXT_BYTES,
    GIB,
    ZERO2_BUCKET_ELEMENTS,
    MemoryScenario,
    cublas_workspaces,
    nccl_bytes,
)
from .setup import DTYPES, build_model, bytes_per_device, device_map_for, fakeify, gradient_checkpointing
from .tracker import PeakTracker, batch_tensors
from .workload import run_forward_backward, run_workload

STATE_KEYS = ("parameters", "buffers", "gradients", "optimizer_states")
CONSTANT_NUMEL_LIMIT = 1 << 16  # integer inputs up to this size are carried as constants (their values drive indexing)
DECODE_STEPS_TRACED = 4  # later decode steps differ only by one more cache position: extrapolated by the measured growth
KV_GROWTH_SLACK = 64  # bytes per sequence and step besides the KV cache: one more int64 id, mask and position


@dataclass
class MemoryEstimate:
    scenario: MemoryScenario
    per_device: dict[str, dict[str, int]]
    traced: dict[str, int]
    peak_phase: str
    sample: dict[str, int]
    tokenizer: str
    seconds: float
    gradient_checkpointing: bool | None
    kv_cache_bytes_per_token: int | None = None  # analytic, one sequence (infer mode)
    kv_cache_measured_bytes_per_step: int | None = None  # traced growth of one decode step, whole batch
    notes: list[str] = field(default_factory=list)

    @property
    def peak_allocated_gib(self) -> float:
        return max(d["allocated"] for d in self.per_device.values()) / GIB

    @property
    def peak_reserved_gib(self) -> float:
        return max(d["reserved"] for d in self.per_device.values()) / GIB

    @property
    def predicted_gib(self) -> float:
        """What a seed's "GB GPU memory" (an nvidia-smi reading) is compared with: the busiest device."""
        return max(d["nvidia_smi"] for d in self.per_device.values()) / GIB

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario.to_dict(), "label": self.scenario.label(),
                "per_device_gib": {dev: {k: round(v / GIB, 3) for k, v in row.items()}
                                   for dev, row in self.per_device.items()},
                "traced_gib": {k: round(v / GIB, 3) for k, v in self.traced.items()},
                "peak_allocated_gib": round(self.peak_allocated_gib, 3),
                "peak_reserved_gib": round(self.peak_reserved_gib, 3),
                "predicted_gib": round(self.predicted_gib, 3), "peak_phase": self.peak_phase,
                "sample": self.sample, "tokenizer": self.tokenizer, "seconds": round(self.seconds, 1),
                "gradient_checkpointing": self.gradient_checkpointing,
                "kv_cache_mib_per_token": _mib(self.kv_cache_bytes_per_token),
                "kv_cache_measured_mib_per_step": _mib(self.kv_cache_measured_bytes_per_step), "notes": self.notes}


def _mib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**20, 4)


@contextlib.contextmanager
def _constant_limit(limit: int):
    import torch._subclasses.fake_tensor as fake_tensor

    previous = fake_tensor.CONSTANT_NUMEL_LIMIT
    fake_tensor.CONSTANT_NUMEL_LIMIT = limit
    try:
        yield
    finally:
        fake_tensor.CONSTANT_NUMEL_LIMIT = previous


@contextlib.contextmanager
def _eager_masks():
    """transformers builds attention masks differently when it sees a FakeTensor (it assumes a compiler is tracing and
    materialises the (L, L) causal mask that eager SDPA skips); the trace must take the eager path a real run takes."""
    try:
        from transformers import masking_utils
    except ImportError:  # pragma: no cover - transformers is a dependency of the models extra
        yield
        return
    original = masking_utils.is_tracing
    masking_utils.is_tracing = lambda tensor=None: original(None)
    try:
        yield
    finally:
        masking_utils.is_tracing = original


def _fake_batch(batch: dict[str, Any], fake_mode: Any, dtype: torch.dtype) -> dict[str, Any]:
    """Integer tensors become fake *constants* (their values stay known, so image spans and masks can be looked up);
    floating tensors (pixels) become plain fake tensors in the model's dtype."""
    converter = fake_mode.fake_tensor_converter
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            if value.is_floating_point():
                out[key] = converter.from_real_tensor(fake_mode, value.to(dtype))
            else:
                out[key] = converter.from_real_tensor(fake_mode, value, make_constant=True)
        elif isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
            out[key] = [converter.from_real_tensor(fake_mode, v.to(dtype) if v.is_floating_point() else v) for v in value]
        else:
            out[key] = value
    return out


def trace(scenario: MemoryScenario, tiny: bool = False, **config_overrides: Any) -> dict[str, Any]:
    """Run the scenario's workload (one process, one device) on fake tensors; the tracked peak and what led to it."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    traced_scenario = scenario
    if scenario.mode == "infer" and scenario.new_tokens > DECODE_STEPS_TRACED:
        traced_scenario = scenario.with_(new_tokens=DECODE_STEPS_TRACED)
    model = build_model(scenario, device="meta", tiny=tiny, **config_overrides)
    fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    fakeify(model, fake_mode)
    encoded = encode_sample(scenario)
    batch = build_batch(scenario, encoded)
    tracker = PeakTracker(record=True)
    after_steps: list[int] = []

    def on_phase(name: str) -> None:
        if name == "decode" or (name == "prefill" and after_steps == []):
            after_steps.append(sum(tracker.current_bytes().values()))
        if name in ("forward", "prefill", "decode"):
            tracker.reset_mod_stats()  # a new root call: MemTracker refuses repeated root calls otherwise
        tracker.phase = name

    def full(shape: tuple[int, ...], value: int, like: torch.Tensor) -> torch.Tensor:
        from torch._subclasses.fake_tensor import unset_fake_temporarily

        with unset_fake_temporarily():
            real = torch.full(shape, value, dtype=like.dtype)
        return fake_mode.fake_tensor_converter.from_real_tensor(fake_mode, real, make_constant=True)

    with _constant_limit(CONSTANT_NUMEL_LIMIT), _eager_masks(), eager_attention(scenario.attention == "eager"), \
            legacy_stack(model, scenario), fake_mode:
        fake = _fake_batch(batch, fake_mode, DTYPES[scenario.dtype])
        tracker.track_external(model, *batch_tensors(fake))
        loaded = sum(len(entries) for entries in tracker.trace.values())  # the model and batch, before the workload
        with tracker:
            if scenario.deepspeed:
                run_forward_backward(model, fake, on_phase)
            else:
                run_workload(model, fake, traced_scenario, on_phase, full=full)
            on_phase("end")
    (device, breakdown), = tracker.peak_breakdown().items() or [("cpu", {"total": 0})]
    result = {"model": model, "breakdown": breakdown, "phase": tracker.peak_phase.get(device, ""),
              "kv_per_token": None, "kv_measured": None, "notes": [], "sample": sample_shape(scenario, encoded),
              "replay": replay_allocations(_with_workspaces(tracker.trace.get(device, []), loaded, scenario))}
    if scenario.mode == "infer":
        result["kv_per_token"] = per_token = kv_cache_bytes_per_token(model.config, DTYPES[scenario.dtype].itemsize)
        if len(after_steps) >= 3:  # [before prefill, after prefill, after decode 1, ...]
            result = _extrapolate_decode(result, tracker, after_steps, per_token * scenario.batch_size, scenario,
                                         traced_scenario)
    return result


def _with_workspaces(entries: list[dict[str, Any]], at: int, scenario: MemoryScenario) -> list[dict[str, Any]]:
    """The traced stream with the cuBLAS workspaces allocated where the first GEMM would take them (after the model
    and the batch are on the device), never freed."""
    first = 1 + max((e["addr"] for e in entries), default=-1)  # addresses the traced stream never uses
    spaces = [{"action": "alloc", "addr": first + i, "size": CUBLAS_WORKSPACE_BYTES, "stream": 0}
              for i in range(cublas_workspaces(scenario.mode))]
    return entries[:at] + spaces + entries[at:]


def replay_allocations(entries: list[dict[str, Any]]) -> dict[str, int]:
    """The traced allocation stream through the caching-allocator model (``vlmref.memory.allocator``, default
    ``PYTORCH_CUDA_ALLOC_CONF``): its peak allocated (block sizes) and reserved (segments) bytes."""
    from .replay import replay_trace

    stats = replay_trace(entries).stats
    return {"peak_requested": stats["peak_requested_bytes"], "peak_allocated": stats["peak_allocated_bytes"],
            "peak_reserved": stats["peak_reserved_bytes"], "segments": stats["num_device_alloc"],
            "entries": len(entries)}


def _extrapolate_decode(result: dict[str, Any], tracker: PeakTracker, after_steps: list[int], kv: int,
                       scenario: MemoryScenario, traced_scenario: MemoryScenario) -> dict[str, Any]:
    """Check the traced growth per decode step against the analytic cache ``kv`` (whole batch) and add the
    decode steps beyond the traced ones to the peak."""
    breakdown = result["breakdown"]
    measured = (after_steps[-1] - after_steps[2]) // max(len(after_steps) - 3, 1)
    result["kv_measured"] = measured
    # the growing int64 ids / mask / positions add a few bytes per step beside the cache
    if not kv <= measured <= kv + KV_GROWTH_SLACK * scenario.batch_size:
        result["notes"].append(f"warning: a decode step grew memory by {measured:,} B, the KV cache alone is "
                               f"{kv:,} B: the model does not keep its cache as transformers hands it over")
    remaining = scenario.new_tokens - traced_scenario.new_tokens
    step = max(measured, kv)  # a model that dropped its cache (warned above) still gets the cache counted
    decode_peak = tracker.phase_peak.get("decode", 0) + remaining * step
    if remaining:
        result["notes"].append(f"{traced_scenario.new_tokens} decode steps traced; the last {remaining} add "
                               f"{step / 2**20:.3f} MiB each (measured growth; KV cache "
                               f"{kv / 2**20:.3f} MiB)")
    if decode_peak > breakdown["total"]:
        extra = decode_peak - breakdown["total"]
        breakdown = {**breakdown, "kv_cache_extrapolated": extra, "total": decode_peak}
        result.update(breakdown=breakdown, phase="decode")
    return result


def _zero_states(model: Any, scenario: MemoryScenario) -> tuple[int, list[str]]:
    """DeepSpeed's per-rank model-state bytes for the scenario (ms-swift default-zero2/3 json, bf16, no offload)."""
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    w = scenario.world_size
    width = DTYPES[scenario.dtype].itemsize
    buckets = int(sum(ZERO2_BUCKET_ELEMENTS.values()) * width)
    states = 18 * n_train // w + buckets
    notes = [f"ZeRO: 18 B x {n_train:,} trainable params / {w} ranks + buckets {buckets / GIB:.2f} GiB"]
    if scenario.deepspeed == "zero3":
        largest = max((sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules()), default=0)
        states += width * n_all // w + 4 * largest
        notes.append(f"ZeRO-3: {width} B x {n_all:,} params / {w} + 4 B x largest layer {largest:,}")
    return states, notes


def compose(scenario: MemoryScenario, traced: dict[str, int], model: Any, replay: dict[str, int] | None = None
            ) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Per-device bytes (categories + allocated / reserved / nvidia_smi) from the one-device trace; ``replay`` (the
    trace's allocation stream through the caching-allocator model) gives what reserved holds above allocated."""
    notes: list[str] = []
    acts = {k: v for k, v in traced.items() if k not in STATE_KEYS and k != "total"}
    act_total = sum(acts.values())
    rows: dict[str, dict[str, int]] = {}
    if scenario.deepspeed:
        states, notes = _zero_states(model, scenario)
        params = 0 if scenario.deepspeed == "zero3" else traced.get("parameters", 0)
        row = {"parameters": params, "buffers": traced.get("buffers", 0), "zero_model_states": states, **acts}
        rows = {f"rank{r}/cuda:0": dict(row) for r in range(scenario.world_size)}
    elif scenario.devices_per_process == 1:
        rows = {"cuda:0": {k: v for k, v in traced.items() if k != "total"}}
    else:
        k = scenario.devices_per_process
        dmap = device_map_for(model, k, 80 * GIB)
        shares = bytes_per_device(model, dmap)
        train_total = sum(s["trainable"] for s in shares.values()) or 1
        for d, share in shares.items():
            frac = share["trainable"] / train_total
            rows[f"cuda:{d}"] = {"parameters": share["parameters"], "buffers": share["buffers"],
                                 "gradients": int(traced.get("gradients", 0) * frac),
                                 "optimizer_states": int(traced.get("optimizer_states", 0) * frac), **acts}
        notes.append(f"device_map over {k} GPUs (accelerate balanced); activations {act_total / GIB:.2f} GiB "
                     f"counted on every device (upper bound)")
        if scenario.world_size > 1:
            rows = {f"rank{r}/{dev}": dict(row) for r in range(scenario.world_size) for dev, row in rows.items()}
    if scenario.world_size > 1 and not scenario.deepspeed:
        for row in rows.values():
            row["ddp_buckets"] = row.get("gradients", 0) or 0
        notes.append("DDP reducer buckets: one gradient-sized buffer per rank")
    workspaces = cublas_workspaces(scenario.mode) * CUBLAS_WORKSPACE_BYTES
    notes.append(f"cuBLAS workspaces: {cublas_workspaces(scenario.mode)} x {CUBLAS_WORKSPACE_BYTES / 2**20:.3f} MiB "
                 "(torch's default CUBLAS_WORKSPACE_CONFIG, one per GEMM thread) on every device")
    total = traced.get("total", 0)
    cache = max(replay["peak_reserved"] - total - workspaces, 0) if replay and total else 0
    if replay:
        notes.append(f"caching allocator (the traced stream replayed, {replay['segments']} segments): reserved "
                     f"{replay['peak_reserved'] / GIB:.2f} GiB for {(total + workspaces) / GIB:.2f} GiB allocated, "
                     f"+{cache / GIB:.2f} GiB" + (", scaled on each device by its share of the traced bytes"
                                                  if len(rows) > 1 or scenario.deepspeed else ""))
    nccl = nccl_bytes(scenario.world_size)
    if nccl:
        notes.append(f"NCCL buffers of the {scenario.world_size}-rank process group: {nccl / 2**20:.0f} MiB per "
                     "process, outside the allocator (NVIDIA/nccl#964, 4 x A100 NVLink)")
    for row in rows.values():
        traced_here = sum(row.values())
        row["cublas_workspace"] = workspaces
        row["allocated"] = traced_here + workspaces
        row["allocator_cache"] = min(cache, cache * traced_here // total) if total else 0
        row["reserved"] = row["allocated"] + row["allocator_cache"]
        row["cuda_context"] = CUDA_CONTEXT_BYTES
        row["nccl"] = nccl
        row["nvidia_smi"] = row["reserved"] + CUDA_CONTEXT_BYTES + nccl
    return rows, notes


def simulate(scenario: MemoryScenario, tiny: bool = False, **config_overrides: Any) -> MemoryEstimate:
    """The predicted peak memory per device of ``scenario`` (about 5-60 s per full-size scenario on 2 CPU cores)."""
    start = time.perf_counter()
    result = trace(scenario, tiny=tiny, **config_overrides)
    traced = result["breakdown"]
    per_device, notes = compose(scenario, traced, result["model"], result["replay"])
    notes = result["notes"] + notes
    return MemoryEstimate(
        scenario=scenario, per_device=per_device, traced=traced, peak_phase=result["phase"],
        sample=result["sample"], tokenizer=scenario_tokenizer(scenario.model_type)[1],
        seconds=time.perf_counter() - start,
        gradient_checkpointing=gradient_checkpointing(scenario) if scenario.mode == "sft" else None,
        kv_cache_bytes_per_token=result["kv_per_token"], kv_cache_measured_bytes_per_step=result["kv_measured"],
        notes=notes)
