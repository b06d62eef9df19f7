"""Process-group helpers for ``vlmref sft``: the torchrun environment, collectives that are no-ops in one process,
and a logger that prints on rank 0 only."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .sft_args import SftArguments


@dataclass(frozen=True)
class DistSetting:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_master(self) -> bool:
        return self.rank == 0

    @property
    def is_local_master(self) -> bool:
        """The first process of its node (torchrun ``LOCAL_RANK`` 0)."""
        return self.local_rank == 0

    @property
    def is_dist(self) -> bool:
        return self.world_size > 1


def get_dist_setting(env: dict[str, str] | None = None) -> DistSetting:
    """RANK / LOCAL_RANK / WORLD_SIZE / LOCAL_WORLD_SIZE as torchrun sets them (defaults: one process)."""
    env = os.environ if env is None else env
    return DistSetting(int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                       int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", 1))))


class Logger:
    """``[INFO:vlmref] ...`` lines on rank 0 only (ms-swift logs on the master); writes through tqdm when a bar is up."""

    def __init__(self, dist: DistSetting) -> None:
        self.dist = dist
        self.bar = None

    def __call__(self, message: str) -> None:
        if not self.dist.is_master:
            return
        line = f"[INFO:vlmref] {message}"
        if self.bar is not None and hasattr(self.bar, "write"):
            self.bar.write(line)
        else:
            print(line, flush=True)


def _barrier() -> None:
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()


def _broadcast_object(value: Any) -> Any:
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()):
        return value
    box = [value]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def _all_reduce_sum(values: list[float]) -> list[float]:
    import torch
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if tdist.get_backend() == "nccl":
        t = t.cuda()
    tdist.all_reduce(t)
    return t.cpu().tolist()


def _all_gather_object(value: Any) -> list[Any]:
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()):
        return [value]
    out: list[Any] = [None] * tdist.get_world_size()
    tdist.all_gather_object(out, value)
    return out


def init_distributed(args: SftArguments, dist: DistSetting, log: Callable[[str], None]) -> None:
    """Process group for WORLD_SIZE > 1: ``--ddp_backend`` or nccl on GPU / gloo on CPU; DeepSpeed's own init."""
    import torch
    import torch.distributed as tdist

    if tdist.is_initialized() or not (dist.is_dist or args.deepspeed is not None):
        return
    backend = args.ddp_backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(dist.local_rank)
    if args.deepspeed is not None:
        import deepspeed

        if not dist.is_dist:  # one process: a one-member group (DeepSpeed would otherwise look for MPI)
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = str(s.getsockname()[1])
            for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_WORLD_SIZE", "1"),
                               ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", port)):
                os.environ.setdefault(key, value)
        deepspeed.init_distributed(dist_backend=backend)
    else:
        tdist.init_process_group(backend=backend)
    log(f"rank: {dist.rank}, local_rank: {dist.local_rank}, world_size: {dist.world_size}, "
        f"local_world_size: {dist.local_world_size}, backend: {backend}")
