"""What a benchmark ran on: Python, torch/CUDA/cuDNN, GPUs and driver, library versions, the git commit.

>>> env = environment()
>>> sorted(env)[:4]
['accelerate', 'cuda', 'cudnn', 'deepspeed']
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

GIB = 1 << 30
PACKAGES = ("torch", "transformers", "tokenizers", "peft", "deepspeed", "accelerate", "safetensors", "vlmref")
ENVIRONMENT_KEYS = ("python", "platform", "cuda", "cudnn", "gpus", "driver", "git_commit", "lock_sha256", "variables",
                    *PACKAGES)
VARIABLES = ("CUDA_VISIBLE_DEVICES", "WORLD_SIZE", "PYTORCH_CUDA_ALLOC_CONF", "OMP_NUM_THREADS")
# the docker harness passes the host's commit in: the image is built without .git (see .dockerignore)
GIT_COMMIT_ENV = "VLMREF_GIT_COMMIT"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def package_version(name: str) -> str | None:
    """The installed distribution's version; without its metadata (a plain checkout on ``PYTHONPATH``, a broken
    install) the ``__version__`` of the module when it is already imported (nothing is imported for it); else None."""
    try:
        return metadata.version(name)
    except Exception:  # noqa: BLE001 - PackageNotFoundError, or unreadable metadata: never fail a record for it
        pass
    version = getattr(sys.modules.get(name), "__version__", None)
    return str(version) if version is not None else None


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def git_commit(repo: str | os.PathLike | None = None, short: bool = False) -> str | None:
    """HEAD of the git checkout ``repo`` (default: the one vlmref is imported from); ``$VLMREF_GIT_COMMIT`` when there
    is none (inside the bench image); None otherwise."""
    root = Path(repo) if repo is not None else REPO_ROOT
    if shutil.which("git") and (root / ".git").exists():
        sha = _run(["git", "rev-parse", "--short" if short else "--verify", "HEAD"], cwd=root)
        if sha:
            return sha
    sha = os.environ.get(GIT_COMMIT_ENV) or None
    return sha[:7] if sha and short else sha


def lock_sha256(repo: str | os.PathLike | None = None) -> str | None:
    """sha256 of the checkout's lock (``constraints.txt``, the versions CI installs), None outside a checkout."""
    import hashlib

    path = (Path(repo) if repo is not None else REPO_ROOT) / "constraints.txt"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def result_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """What a committed result records about the software that made it: Python, the packages, the commit, the lock.

    >>> sorted(result_versions(("torch",)))
    ['git_commit', 'lock_sha256', 'python', 'torch']
    """
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    out.update({name: package_version(name) for name in packages})
    out["git_commit"] = git_commit()
    out["lock_sha256"] = lock_sha256()
    return out


def driver_version() -> str | None:
    """``nvidia-smi --query-gpu=driver_version`` (first GPU), None without nvidia-smi or a driver."""
    if not shutil.which("nvidia-smi"):
        return None
    out = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return out.splitlines()[0].strip() if out else None


def _torch_info() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"cuda": None, "cudnn": None, "gpus": []}
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gpus.append({"index": i, "name": props.name, "total_memory_gib": round(props.total_memory / GIB, 3)})
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"cuda": torch.version.cuda, "cudnn": cudnn, "gpus": gpus}


def environment() -> dict[str, Any]:
    """One flat dict with every key of ``ENVIRONMENT_KEYS`` (None where a thing is missing)."""
    env: dict[str, Any] = {"platform": platform.platform(), **result_versions()}
    env.update(_torch_info())
    env["driver"] = driver_version()
    env["variables"] = {k: os.environ[k] for k in VARIABLES if k in os.environ}
    env["vlmref_source"] = str(Path(__file__).resolve().parent.parent)  # the checkout or install it ran from
    return env
