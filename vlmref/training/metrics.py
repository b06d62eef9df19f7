"""What ``vlmref sft`` reports while it trains: peak memory per device, the progress fields of each log record, and
the progress bar.

::

    from vlmref.training.dist import DistSetting
    from vlmref.training.metrics import format_time, peak_memory
    peak_memory(DistSetting())["per_device"]   # {'rank0/cpu': 1.234} on CPU
    format_time(3725)                           # '1h 2m 5s'
"""

from __future__ import annotations

import sys
import time
from typing import Any

from .dist import DistSetting, all_gather_object

GIB = 1024**3


def peak_memory(dist: DistSetting) -> dict[str, Any]:
    """Peak memory PER DEVICE, gathered from every rank (a collective: call on all ranks at the same point).

    GPU: ``torch.cuda.max_memory_reserved`` of each visible device, keyed ``rank<r>/cuda:<i>``. CPU: the peak resident
    set size of each rank's process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, whole-process lifetime, model
    loading included), keyed ``rank<r>/cpu``. Never summed over devices or ranks.
    """
    import torch

    if torch.cuda.is_available():
        mine = {f"rank{dist.rank}/cuda:{i}": round(torch.cuda.max_memory_reserved(i) / GIB, 4)
                for i in range(torch.cuda.device_count()) if torch.cuda.max_memory_reserved(i) > 0}
        measure = "torch.cuda.max_memory_reserved per device"
    else:
        import resource

        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        mine = {f"rank{dist.rank}/cpu": round(rss_kib * 1024 / GIB, 4)}
        measure = "peak RSS of each rank's process (getrusage ru_maxrss), CPU"
    per_device: dict[str, float] = {}
    for part in all_gather_object(mine):
        per_device.update(part)
    return {"measure": measure, "unit": "GiB", "per_device": per_device}


def format_time(seconds: float) -> str:
    """``3725`` -> ``'1h 2m 5s'``; under an hour ``'2m 5s'`` (ms-swift's elapsed/remaining format)."""
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m}m {s}s" if h else f"{m}m {s}s"


def progress_fields(global_step: int, max_steps: int, started_at_step: int, start_time: float) -> dict[str, Any]:
    """``global_step/max_steps``, ``percentage``, ``elapsed_time`` and (once a step of this process is done)
    ``remaining_time``, estimated from this process's steps (a resumed run's earlier steps are not timed)."""
    elapsed = time.time() - start_time
    done = (global_step - started_at_step) / max(max_steps - started_at_step, 1)
    out = {"global_step/max_steps": f"{global_step}/{max_steps}",
           "percentage": f"{100 * global_step / max_steps:.2f}%", "elapsed_time": format_time(elapsed)}
    if done > 0:
        out["remaining_time"] = format_time(elapsed / done - elapsed)
    return out


def progress_bar(total: int, initial: int) -> Any:
    """tqdm's ``Train`` bar (``SimpleBar`` without tqdm)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with transformers
        return SimpleBar(total, initial)
    return tqdm(desc="Train", total=total, initial=initial, dynamic_ncols=True)


class SimpleBar:  # pragma: no cover - used only without tqdm
    """A one-line progress bar for when tqdm is missing."""

    def __init__(self, total: int, initial: int = 0) -> None:
        self.total, self.n = total, initial

    def update(self, k: int = 1) -> None:
        self.n += k
        print(f"\rTrain: {self.n}/{self.total}", end="", file=sys.stderr, flush=True)

    def write(self, line: str) -> None:
        print(f"\r{line}", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr, flush=True)
