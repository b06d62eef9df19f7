"""Small helpers: the seeds' API (``seed_everything``), file writing, id runs as text (``runs_text``)."""

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


def current_umask() -> int:
    """The process umask (from ``/proc/self/status`` on Linux, so it is never changed even for an instant)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def chmod_per_umask(path: str | os.PathLike) -> None:
    """Give ``path`` and everything under it the modes a plain ``mkdir``/``open`` gives: folders 0777, files 0666
    (0777 if executable), less the umask. For trees made with ``mkdtemp`` or by writers using ``mkstemp`` or
    ``NamedTemporaryFile`` (0700 / 0600), before they are renamed into place. With umask 022: ``drwxr-xr-x``,
    ``-rw-r--r--``."""
    mask = current_umask()

    def fix_file(full: str) -> None:
        if not os.path.islink(full):
            os.chmod(full, (0o777 if os.stat(full).st_mode & 0o111 else 0o666) & ~mask)

    if not os.path.isdir(path):
        fix_file(os.fspath(path))
        return
    for root, _dirs, files in os.walk(path):  # top-down: each folder is made traversable before its children
        os.chmod(root, 0o777 & ~mask)
        for name in files:
            fix_file(os.path.join(root, name))


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename (never half-written);
    ``mode``: the file's mode (default: 0666 less the umask, as a plain ``open`` would give)."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask() if mode is None else mode)  # mkstemp makes it 0600
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


def runs_text(values: list[int] | None) -> str:
    """ids with runs of 4+ equal values written ``[v * n]`` (ms-swift's print_example style)::

        >>> runs_text([1, 733, 32000, 32000, 32000, 32000, 13])
        '1 733 [32000 * 4] 13'
    """
    if values is None:
        return "None"
    out: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        out.append(f"[{values[i]} * {j - i}]" if j - i >= 4 else " ".join(str(v) for v in values[i:j]))
        i = j
    return " ".join(out)
