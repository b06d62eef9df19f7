"""Training state files of a checkpoint (``rng_state*.pth``, ``optimizer.pt``, ``scheduler.pt``) as plain data.

A checkpoint is data, never code: every file is read with ``torch.load(weights_only=True)``, which only rebuilds
tensors, numbers, strings and containers and refuses any other class or function. The RNG state is written as
tensors and numbers (no numpy objects)::

    >>> save_rng_state("/tmp/rng_state.pth")
    >>> sorted(load_rng_state("/tmp/rng_state.pth"))       # what set_rng_state takes
    ['cpu', 'numpy', 'python']

Checkpoints written before this format (``rng_state.pth`` holding numpy's ``get_state()`` tuple) still load: the
three numpy names such a file needs (``ndarray``, ``dtype`` and its ``_reconstruct``) are the only extra globals
allowed, and only for the RNG file. Anything else that is not plain data stops the resume with
``CheckpointStateError`` naming the file and the refused name.

DeepSpeed's own resume (``engine.load_checkpoint``) reads its ``global_step*/`` files with
``torch.load(weights_only=False)``; ``safe_deepspeed_loads(engine)`` swaps in a checkpoint engine that reads
them with ``weights_only=True`` and only the record classes DeepSpeed writes there (``DEEPSPEED_STATE_GLOBALS``).
"""

from __future__ import annotations

import random
import re
from typing import Any

from ..errors import VlmrefError
from .sft_args import SftArgumentError

RNG_FORMAT = 2  # 1 (implicit): numpy's get_state() tuple pickled as is; 2: tensors and numbers only


class CheckpointStateError(SftArgumentError, VlmrefError):
    """A checkpoint's state file is unreadable or holds something other than plain data (``sft`` exits 2)."""


def rng_state_data() -> dict[str, Any]:
    """The Python, numpy, torch CPU (and CUDA) generators' states as tensors and numbers."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    bitgen, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "format": RNG_FORMAT,
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"bit_generator": str(bitgen), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def _from_data(data: dict[str, Any]) -> dict[str, Any]:
    """Back to the objects ``random.setstate`` / ``np.random.set_state`` take."""
    import numpy as np

    py, npy = data["python"], data["numpy"]
    state = {"python": (int(py["version"]), tuple(int(x) for x in py["state"].tolist()), py["gauss"]),
             "numpy": (npy["bit_generator"], npy["keys"].numpy().astype(np.uint32), int(npy["pos"]),
                       int(npy["has_gauss"]), float(npy["cached_gaussian"])),
             "cpu": data["cpu"]}
    if "cuda" in data:
        state["cuda"] = data["cuda"]
    return state


def save_rng_state(path: str) -> None:
    """Write this process's RNG state to ``path`` (the checkpoint writer calls it inside its temporary folder)."""
    import torch

    torch.save(rng_state_data(), path)


def load_plain(path: str, extra_globals: list[Any] | None = None, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; a file that needs any other class or function raises
    ``CheckpointStateError`` (the name it asked for is in the message), as does an unreadable one."""
    import pickle

    import torch

    try:
        if extra_globals:
            with torch.serialization.safe_globals(extra_globals):
                return torch.load(path, map_location=map_location, weights_only=True)
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if "WeightsUnpickler error" in line), lines[0] if lines else "")
        refused = _refused_names(path) or re.findall(r"Unsupported global: GLOBAL (\S+)", detail)
        what = f" (it asks for {', '.join(refused)})" if refused else ""
        raise CheckpointStateError(f"{path}: not plain tensors and numbers{what}; vlmref loads checkpoint state with "
                                   "torch.load(weights_only=True) and never runs code from a checkpoint. "
                                   f"Detail: {detail[:300]}") from None
    except (OSError, RuntimeError, EOFError) as err:
        raise CheckpointStateError(f"{path}: cannot read it ({type(err).__name__}: {err})") from None


def _refused_names(path: str) -> list[str]:
    import torch

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - only used to make the message more precise
        return []


def _legacy_numpy_globals() -> list[Any]:
    """The globals numpy's ``get_state()`` tuple pickles to (format 1): the array, its dtype, the rebuild call."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return [np.ndarray, np.dtype, _reconstruct, type(np.dtype(np.uint32))]


def load_rng_state(path: str) -> dict[str, Any]:
    """The state saved by ``save_rng_state`` (or by a vlmref before it: format 1), ready for ``set_rng_state``."""
    data = load_plain(path, extra_globals=_legacy_numpy_globals())
    if not isinstance(data, dict) or not {"python", "numpy", "cpu"} <= set(data):
        raise CheckpointStateError(f"{path}: not an RNG state (expected the keys python, numpy, cpu)")
    if data.get("format") == RNG_FORMAT:
        return _from_data(data)
    return data  # format 1: already the objects set_rng_state takes


# The non-tensor objects DeepSpeed 0.19 writes into ``global_step*/`` (found in real ZeRO-2/3 checkpoints): the
# ZeRO optimizer's loss scaler, its stage enum, and the flat-buffer slice records of ``param_slice_mappings``.
DEEPSPEED_STATE_GLOBALS = (
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
)


def _deepspeed_globals() -> list[Any]:
    import importlib

    found = []
    for dotted in DEEPSPEED_STATE_GLOBALS:
        module, _, name = dotted.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):  # another DeepSpeed release: that class cannot be in its files
            continue
    return found


class SafeCheckpointEngine:
    """Wraps DeepSpeed's checkpoint engine: ``load`` is ``load_plain`` with ``DEEPSPEED_STATE_GLOBALS``; the
    rest (save, commit, ...) is the wrapped engine's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._globals = _deepspeed_globals()

    def load(self, path: str, map_location: Any = None) -> Any:
        return load_plain(path, extra_globals=self._globals, map_location=map_location or "cpu")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def safe_deepspeed_loads(engine: Any) -> None:
    """Make ``engine.load_checkpoint`` read every file with ``weights_only=True`` (call before it)."""
    if not isinstance(engine.checkpoint_engine, SafeCheckpointEngine):
        engine.checkpoint_engine = SafeCheckpointEngine(engine.checkpoint_engine)
