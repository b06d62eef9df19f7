"""The data plan of ``vlmref sft``: which rows each rank reads and how many optimizer steps the run has.

::

    from vlmref.training.plan import Plan, epoch_order
    plan = Plan.make(n_train=8, args=args, world_size=1)   # batch_size 1, gradient_accumulation_steps 4
    plan.updates_per_epoch, plan.micro_range(1)            # (2, (0, 4, 8))
    epoch_order(8, epoch=0, seed=42, world_size=2, rank=0) # this rank's 4 row indices

* Each epoch is a permutation of the train rows (``torch.randperm`` seeded with ``seed + epoch``; the same on every
  rank), padded by repetition to a multiple of the world size and dealt round-robin to the ranks (as
  ``DistributedSampler``), cut into micro-batches of ``batch_size``.
* ``gradient_accumulation_steps`` micro-batches per optimizer step; an epoch has
  ``ceil(micro_batches / gradient_accumulation_steps)`` steps, the last one taking the remainder (as transformers
  >= 4.46). The data position of a step follows from ``global_step`` alone, which is what makes a resume exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..llm.sft_args import SftArgumentError, SftArguments


def epoch_order(n: int, epoch: int, seed: int, world_size: int, rank: int, shuffle: bool = True) -> list[int]:
    """This rank's row indices for ``epoch``: a seeded permutation, padded by repetition to a multiple of the world
    size, dealt round-robin (``DistributedSampler`` semantics; ``seed`` is the same on every rank)."""
    import torch

    if n == 0:
        return []
    if shuffle:
        g = torch.Generator()
        g.manual_seed(seed + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    total = math.ceil(n / world_size) * world_size
    while len(order) < total:
        order += order[: total - len(order)]
    return order[rank:total:world_size]


@dataclass
class Plan:
    """How many micro-batches and optimizer steps the run has (the same on every rank)."""

    n_train: int
    micro_batches_per_epoch: int
    updates_per_epoch: int
    max_steps: int
    num_train_epochs: int
    gas: int

    @classmethod
    def make(cls, n_train: int, args: SftArguments, world_size: int) -> Plan:
        per_rank = math.ceil(n_train / world_size)
        micro = per_rank // args.batch_size if args.dataloader_drop_last else math.ceil(per_rank / args.batch_size)
        if micro == 0:
            raise SftArgumentError(f"the training split has {n_train} row(s): not one batch of {args.batch_size} per "
                                   f"rank (world size {world_size})")
        updates = math.ceil(micro / args.gradient_accumulation_steps)
        max_steps = args.max_steps if args.max_steps > 0 else args.num_train_epochs * updates
        return cls(n_train, micro, updates, max_steps, math.ceil(max_steps / updates), args.gradient_accumulation_steps)

    def micro_range(self, step: int) -> tuple[int, int, int]:
        """(epoch, first micro-batch, end micro-batch) of optimizer step ``step`` (0-based)."""
        epoch, k = divmod(step, self.updates_per_epoch)
        start = k * self.gas
        return epoch, start, min(start + self.gas, self.micro_batches_per_epoch)

    def epoch_float(self, step_done: int) -> float:
        """Epochs completed after ``step_done`` optimizer steps (fractional)."""
        epoch, _, end = self.micro_range(step_done - 1)
        return epoch + end / self.micro_batches_per_epoch
