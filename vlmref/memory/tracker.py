"""torch's ``MemTracker`` made fit for tracing vlmref's models under ``FakeTensorMode``.

Two changes to ``torch.distributed._tools.mem_tracker.MemTracker`` (torch is pinned, so the private hooks are stable):

* gradient hooks go only on parameters that require grad (the stock tracker registers a hook on every parameter and
  fails on frozen ones: LoRA's base weights, inference);
* only the global peak is kept per operation: the stock per-module peak walk costs O(modules) per operator, which made
  a 7B LoRA trace take 115 s instead of 6 s. Per-module peaks are not used by vlmref.

It also records the allocation stream (``record=True``): every storage it starts or stops counting, in order, as
entries in the format of ``torch.cuda.memory._snapshot()["device_traces"][i]`` (``alloc`` with the storage's bytes,
``free_completed``; one stream), which ``vlmref.memory.replay`` runs through the caching-allocator model.

>>> import torch
>>> tracker = PeakTracker()
>>> with tracker:
...     x = torch.ones(1024, 256)  # 1 MiB
...     y = x * 2
>>> round(tracker.peak_bytes() / 2**20)
2
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import torch
from torch.distributed._tools import mem_tracker as _mt

CATEGORIES = {"PARAM": "parameters", "BUFFER": "buffers", "GRAD": "gradients", "OPT": "optimizer_states",
              "ACT": "activations", "TEMP": "temporaries", "OTH": "inputs"}  # OTH: what track_external got besides
# modules and optimizers; vlmref passes it the batch (input ids, masks, pixels), which live on the GPU too


class PeakTracker(_mt.MemTracker):
    """Peak memory per device by category; ``phase`` names the step the caller is in when the peak happens."""

    def __init__(self, record: bool = False) -> None:
        super().__init__()
        self.phase = ""
        self.peak_phase: dict[str, str] = {}
        self.phase_peak: dict[str, int] = {}  # highest total (all devices) seen in each phase
        self.trace: dict[str, list[dict[str, Any]]] | None = {} if record else None  # device -> entries
        self._addr: dict[int, int] = {}  # id(winfo) -> the address its live allocation has in the trace
        self._next_addr = 0

    def _update_snap(self, u_type: Any, winfo: Any, old_mem_consumed: int | None = None,
                     old_reftype: Any = None) -> None:
        super()._update_snap(u_type, winfo, old_mem_consumed=old_mem_consumed, old_reftype=old_reftype)
        if self.trace is None:
            return
        if u_type in (_mt._UpdateType.DEL, _mt._UpdateType.SIZE):
            self._record("free_completed", winfo, old_mem_consumed or winfo.mem_consumed)
        if u_type in (_mt._UpdateType.ADD, _mt._UpdateType.SIZE) and winfo.mem_consumed > 0:
            self._record("alloc", winfo, winfo.mem_consumed)

    def _record(self, action: str, winfo: Any, size: int) -> None:
        key = id(winfo)
        if action == "alloc":
            self._addr[key] = addr = self._next_addr
            self._next_addr += 1
        elif key in self._addr:
            addr = self._addr.pop(key)
        else:  # a resize of a storage that held nothing
            return
        self.trace.setdefault(str(winfo.device), []).append(
            {"action": action, "addr": addr, "size": int(size), "stream": 0})

    def _track_module_params_and_buffers(self, module: torch.nn.Module, install_grad_hooks: bool = True):
        out = super()._track_module_params_and_buffers(module, install_grad_hooks=False)
        if install_grad_hooks:
            for param in module.parameters():
                if param.requires_grad and self._param_to_grad_hook_handles.get(param) is None:
                    self._param_to_grad_hook_handles[param] = (
                        param.register_hook(self._on_grad),
                        param.register_post_accumulate_grad_hook(lambda p: self._on_grad(p.grad)),
                    )
        return out

    def _on_grad(self, grad: torch.Tensor) -> None:
        self._update_and_maybe_create_winfos(grad, _mt._MemRefType.GRAD)

    def _update_peak_stats(self, peak_state: Any) -> None:
        total = sum(snap[_mt._TOTAL_KEY] for snap in self._curr_mem_snap.values())
        if total > self.phase_peak.get(self.phase, -1):
            self.phase_peak[self.phase] = total
        for dev, snap in self._curr_mem_snap.items():
            if self._peak_mem.get(dev, 0) < snap[_mt._TOTAL_KEY]:
                self._peak_mem[dev] = snap[_mt._TOTAL_KEY]
                self._peak_mem_snap[dev] = deepcopy(snap)
                self.peak_phase[str(dev)] = self.phase

    def peak_bytes(self) -> int:
        return max(self._peak_mem.values(), default=0)

    def current_bytes(self) -> dict[str, int]:
        return {str(dev): int(snap[_mt._TOTAL_KEY]) for dev, snap in self._curr_mem_snap.items()}

    def peak_breakdown(self) -> dict[str, dict[str, int]]:
        """``{device: {category: bytes, ..., 'total': bytes}}`` at each device's peak."""
        out: dict[str, dict[str, int]] = {}
        for dev, snap in self._peak_mem_snap.items():
            row = {CATEGORIES[k.name]: int(v) for k, v in snap.items() if k != _mt._TOTAL_KEY}
            row["total"] = int(snap[_mt._TOTAL_KEY])
            out[str(dev)] = row
        return out


def batch_tensors(batch: dict[str, Any]) -> list[torch.Tensor]:
    """The tensors of a collated batch (``pixel_values`` may be a list of tensors)."""
    out: list[torch.Tensor] = []
    for value in batch.values():
        if isinstance(value, torch.Tensor):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out += [v for v in value if isinstance(v, torch.Tensor)]
    return out
