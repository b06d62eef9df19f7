"""Multi-process launch as ms-swift's ``cli/main.py``: ``NPROC_PER_NODE`` / ``NNODES`` -> re-run under torchrun.

::

    NPROC_PER_NODE=2 vlmref sft --model_type qwen-vl-chat --dataset coco-en-mini-sample --sft_type full
    # prints: run sh: `python -m torch.distributed.run --nproc_per_node 2 -m vlmref.cli.sft --model_type ...`

When ``NPROC_PER_NODE`` or ``NNODES`` is set (and this process was not itself started by torchrun), ``vlmref sft``
re-executes as ``torchrun`` with ``--nproc_per_node``, ``--master_port``, ``--nnodes``, ``--node_rank`` and
``--master_addr`` taken from ``NPROC_PER_NODE``, ``MASTER_PORT``, ``NNODES``, ``NODE_RANK``, ``MASTER_ADDR`` (each only
when set, in ms-swift's order). torchrun is run as ``python -m torch.distributed.run`` with this interpreter (the
``torchrun`` script of the same torch), so it works whether or not the venv's ``bin`` is on PATH. Only ``sft`` is
relaunched; other commands ignore these variables, as in ms-swift.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

TORCHRUN_ENV = ("NPROC_PER_NODE", "MASTER_PORT", "NNODES", "NODE_RANK", "MASTER_ADDR")


def use_torchrun(env: dict[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("NPROC_PER_NODE") is not None or env.get("NNODES") is not None


def launched_by_torchrun(env: dict[str, str] | None = None) -> bool:
    """True inside a torchrun worker (torchrun sets TORCHELASTIC_RUN_ID and LOCAL_RANK for its children)."""
    env = os.environ if env is None else env
    return "TORCHELASTIC_RUN_ID" in env or ("LOCAL_RANK" in env and "WORLD_SIZE" in env)


def torchrun_args(env: dict[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    out: list[str] = []
    for key in TORCHRUN_ENV:
        value = env.get(key)
        if value is not None:
            out += [f"--{key.lower()}", value]
    return out


def torchrun_command(module: str, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    """The command ``vlmref sft`` re-executes itself as (``module`` run with ``-m`` under torchrun)."""
    return [sys.executable, "-m", "torch.distributed.run", *torchrun_args(env), "-m", module, *argv]


def maybe_relaunch(module: str, argv: list[str]) -> int | None:
    """Re-run ``module argv`` under torchrun when NPROC_PER_NODE/NNODES ask for it; its exit code, else None."""
    if not use_torchrun() or launched_by_torchrun():
        return None
    cmd = torchrun_command(module, argv)
    print(f"run sh: `{shlex.join(cmd)}`", flush=True)  # quoted: `--system ''` shows as given
    return subprocess.run(cmd).returncode
