"""Process state of a training run: where this process sits (``DistSetting``, read from torchrun's environment before
any process group exists) and the four collectives the training library uses, on the torch process group that
``vlmref.llm.dist.init_distributed`` or DeepSpeed made; each is the identity in a single process without a group::

    barrier()
    name = broadcast_object(name)          # rank 0's value everywhere
    parts = all_gather_object(mine)        # [rank 0's, rank 1's, ...]
    sums = all_reduce_sum([loss, n])       # float64 sums over ranks

torch.distributed, not accelerate's helpers: ``accelerate.utils.gather_object`` and the others ask ``PartialState``
for the distributed type, and for a gloo group made outside accelerate on a CPU torchrun it answers "not
distributed": ``gather_object`` then returns this rank's value alone, silently (a 2-process run gathered
``['rank0/cpu']``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


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


def _group_up() -> bool:
    import torch.distributed as tdist

    return tdist.is_available() and tdist.is_initialized()


def barrier() -> None:
    import torch.distributed as tdist

    if _group_up():
        tdist.barrier()


def broadcast_object(value: Any) -> Any:
    import torch.distributed as tdist

    if not _group_up():
        return value
    box = [value]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(value: Any) -> list[Any]:
    import torch.distributed as tdist

    if not _group_up():
        return [value]
    out: list[Any] = [None] * tdist.get_world_size()
    tdist.all_gather_object(out, value)
    return out


def all_reduce_sum(values: list[float]) -> list[float]:
    import torch
    import torch.distributed as tdist

    if not _group_up():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if tdist.get_backend() == "nccl":
        t = t.cuda()
    tdist.all_reduce(t)
    return t.cpu().tolist()
