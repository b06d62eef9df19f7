"""Small helpers from the seeds' API (``seed_everything``)."""

from __future__ import annotations

import os
import random
from typing import Any


def seed_everything(seed: int | None = None, full_determinism: bool = False, *, verbose: bool = True) -> int:
    """Seed Python, NumPy and torch (those that are installed); a random seed when ``seed`` is None. Returns it.

    ``full_determinism`` also asks torch for deterministic kernels (as transformers' ``enable_full_determinism``).
    """
    if seed is None:
        seed = random.SystemRandom().randint(0, 2**32 - 1)
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.manual_seed(seed)
        if full_determinism:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
    if verbose:
        print(f"Global seed set to {seed}")
    return seed


def cache_dir(*parts: str) -> str:
    """vlmref's cache folder (``$VLMREF_CACHE``, else ``~/.cache/vlmref``) joined with ``parts``; created on demand."""
    root = os.environ.get("VLMREF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vlmref")
    path = os.path.join(root, *parts)
    os.makedirs(path, exist_ok=True)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename (never half-written);
    ``mode``: chmod the file before it appears (the temporary file is private, 0600)."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_device(value: Any, device: Any, dtype: Any = None) -> Any:
    """Move a batch value (a tensor or a list of tensors) to ``device``; floating tensors also to ``dtype``."""
    import torch

    if isinstance(value, torch.Tensor):
        if torch.is_floating_point(value) and dtype is not None:
            return value.to(device=device, dtype=dtype)
        return value.to(device)
    if isinstance(value, list):
        return [to_device(v, device, dtype) for v in value]
    return value
