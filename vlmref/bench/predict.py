"""``vlmref bench --predict``: vlmref's CPU prediction (``vlmref.memory.simulate``) of each scenario it measures, put
next to the measurement as the record's ``predicted`` field.

On CUDA the predictions run in one worker process (``spawn``, with ``CUDA_VISIBLE_DEVICES=""`` so it never makes a
CUDA context on the GPUs being measured) while the GPU runs the scenarios; elsewhere (``--device cpu``, where a
second busy process would disturb the measurement) each is computed after its scenario, in this process.

>>> from vlmref.memory.scenario import MemoryScenario
>>> p = predict(MemoryScenario("qwen-vl-chat", "infer", text_tokens=16, new_tokens=2), tiny=True)
>>> sorted(k for k in p if k.endswith("_gib")), p["error"]
(['allocated_gib', 'nvidia_smi_gib', 'reserved_gib'], None)
"""

from __future__ import annotations

import os
from typing import Any

GIB = 1 << 30
SOURCE = "vlmref.memory.simulate (FakeTensorMode trace on CPU + caching-allocator replay), the same scenario"


def _gib(n: int | float) -> float:
    return round(n / GIB, 4)


def predicted_fields(estimate: Any, tiny: bool) -> dict[str, Any]:
    """A ``MemoryEstimate`` as the record's ``predicted``: the busiest device's allocated / reserved / nvidia-smi
    GiB (as the measurement's peaks), per device, and where the figures come from."""
    rows = estimate.per_device
    per_device = {dev: {"allocated_gib": _gib(r["allocated"]), "reserved_gib": _gib(r["reserved"]),
                        "nvidia_smi_gib": _gib(r["nvidia_smi"])} for dev, r in rows.items()}
    return {"allocated_gib": max(d["allocated_gib"] for d in per_device.values()),
            "reserved_gib": max(d["reserved_gib"] for d in per_device.values()),
            "nvidia_smi_gib": max(d["nvidia_smi_gib"] for d in per_device.values()),
            "per_device": per_device, "peak_phase": estimate.peak_phase, "tokenizer": estimate.tokenizer,
            "seconds": round(estimate.seconds, 2), "tiny": bool(tiny), "source": SOURCE, "error": None}


def predict(scenario: Any, tiny: bool = False) -> dict[str, Any]:
    """``simulate(scenario)`` as ``predicted_fields``; a failure is ``{"error": "Type: message"}`` (never raised)."""
    try:
        from ..memory.simulate import simulate

        return predicted_fields(simulate(scenario, tiny=tiny), tiny)
    except Exception as err:  # noqa: BLE001 - a failed prediction must not lose the measurement
        return {"allocated_gib": None, "reserved_gib": None, "nvidia_smi_gib": None, "tiny": bool(tiny),
                "source": SOURCE, "error": f"{type(err).__name__}: {err}"}


def _hide_gpus() -> None:
    """The worker's initializer: runs before the worker imports torch."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""


class Predictor:
    """Predictions by key: ``submit`` all first (``background``: they start in the worker at once), ``get`` each."""

    def __init__(self, tiny: bool = False, background: bool = False) -> None:
        self.tiny = tiny
        self.background = background
        self.pool: Any = None
        self.futures: dict[str, Any] = {}

    def submit(self, key: str, scenario: Any) -> None:
        if not self.background:
            return
        if self.pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_hide_gpus)
        self.futures[key] = self.pool.submit(predict, scenario, self.tiny)

    def get(self, key: str, scenario: Any) -> dict[str, Any]:
        future = self.futures.pop(key, None)
        if future is None:
            return predict(scenario, self.tiny)
        try:
            return future.result()
        except Exception as err:  # noqa: BLE001 - the worker died (e.g. out of host memory)
            return {"allocated_gib": None, "reserved_gib": None, "nvidia_smi_gib": None, "tiny": self.tiny,
                    "source": SOURCE, "error": f"prediction worker failed: {type(err).__name__}: {err}"}

    def close(self) -> None:
        if self.pool is not None:
            for future in self.futures.values():
                future.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
