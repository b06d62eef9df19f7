"""The eval loss/accuracy of ``vlmref sft`` on the validation rows, over every rank.

::

    from vlmref.training.evaluate import evaluate
    sums = evaluate(model, n_rows=len(val), make_batch=lambda idx: collate([encode(val[j]) for j in idx]),
                    batch_size=1, world_size=1, rank=0)
    sums.loss, sums.acc   # row-weighted mean loss, token accuracy

Rows are dealt round-robin to the ranks (rank r: rows r, r + world, ...) and cut into batches of ``batch_size``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .dist import all_reduce_sum
from .step import forward_with_accuracy


@dataclass
class EvalSums:
    """Sums over every rank: ``loss_sum`` is the row-weighted loss sum, ``n_batches`` the forwards run."""

    loss_sum: float
    n_rows: float
    correct: float
    total: float
    n_batches: float

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.n_rows, 1)

    @property
    def acc(self) -> float:
        return self.correct / max(self.total, 1)


def evaluate(module: Any, n_rows: int, make_batch: Callable[[list[int]], dict[str, Any]], batch_size: int,
             world_size: int, rank: int, autocast: Any = None) -> EvalSums:
    """Forward this rank's rows under ``no_grad`` in eval mode (then back to train mode); sums all-reduced.

    Every rank runs the same number of forwards (ZeRO-3 gathers parameters collectively); a rank with no row left
    runs row 0 again and does not count it. A collective: call on every rank.
    """
    import torch

    module.eval()
    mine = list(range(rank, n_rows, world_size))  # this rank's rows
    per_rank = math.ceil(n_rows / world_size)
    loss_sum = n_done = correct = total = 0.0
    n_batches = 0
    with torch.no_grad():
        for b in range(0, per_rank, batch_size):
            rows = mine[b:b + batch_size]
            batch = make_batch(rows or [0])
            loss, c, t = forward_with_accuracy(module, batch, autocast)
            n_batches += 1
            if rows:
                loss_sum += float(loss) * len(rows)
                n_done += len(rows)
                correct += c
                total += t
    sums = all_reduce_sum([loss_sum, n_done, correct, total, n_batches])
    module.train()
    return EvalSums(*sums)
