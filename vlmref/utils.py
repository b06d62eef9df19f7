"""Small helpers from the seeds' API (``seed_everything``)."""

from __future__ import annotations

import os
import random


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
