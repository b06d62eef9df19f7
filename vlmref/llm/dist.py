"""Process-group start for ``vlmref sft`` (``init_distributed``) and a logger that prints on rank 0 only; where a
process sits and the collectives are the training library's (``vlmref.training.dist``, re-exported here)."""

from __future__ import annotations

import os
from collections.abc import Callable

from ..training.dist import DistSetting
from .sft_args import SftArguments


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
