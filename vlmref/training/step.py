"""One optimizer step of ``vlmref sft``: forward, backward and accumulation over the micro-batches, then clipping and
the optimizer/scheduler step; the same code for a real run and (later) the memory predictor.

::

    from vlmref.training.step import train_step
    result = train_step(model, [batch_a, batch_b], optimizer=optimizer, scheduler=scheduler, max_grad_norm=0.5)
    result.loss, result.grad_norm   # mean of the two micro-batch losses; the norm before clipping

* The loss of a step is the mean of its micro-batch losses (each the model's token-mean loss); each micro-batch's
  loss is divided by the number of micro-batches before ``backward``, so the gradients are that mean's.
* Without DeepSpeed: gradients are clipped at ``max_grad_norm`` (none with 0), then ``optimizer.step()``,
  ``scheduler.step()`` and ``zero_grad(set_to_none=True)``; with an fp16 ``GradScaler`` the loss is scaled and the
  gradients unscaled before clipping. Under DDP only the last micro-batch synchronises gradients (``no_sync``).
* With a DeepSpeed ``engine``: ``engine.backward`` / ``engine.step`` per micro-batch, the accumulation boundary set on
  the last one; the grad norm is the engine's.
* Accuracy: next-token argmax against the labels, over the positions whose label is not -100.
* ``on_phase(name)`` is called before each micro-batch's "forward" and "backward" and before the "optimizer" part
  (the memory trace labels its peak with it); ``host_reads=False`` reads none of the step's figures to the host (no
  device sync; a ``FakeTensorMode`` trace has no values to read): its ``StepResult`` holds only ``samples``, and the
  tensors the figures come from are freed as soon as a real step frees them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def autocast_dtype(fp16: bool, bf16: bool, engine: Any = None) -> Any:
    """The CUDA autocast dtype of a forward (fp16/bf16 on a GPU without DeepSpeed, which casts itself), else None."""
    import torch

    if torch.cuda.is_available() and (fp16 or bf16) and engine is None:
        return torch.float16 if fp16 else torch.bfloat16
    return None


def forward_with_accuracy(module: Any, batch: dict[str, Any], autocast: Any = None,
                          host_reads: bool = True) -> tuple[Any, Any, Any]:
    """``module(**batch)`` (under CUDA autocast to ``autocast`` when given) -> (loss tensor, correct next-token
    predictions, counted label positions); the two counts are floats, or None with ``host_reads=False``."""
    import torch

    ctx = contextlib.nullcontext()
    if autocast is not None:
        ctx = torch.autocast("cuda", dtype=autocast)
    with ctx:
        out = module(**batch)
    labels = batch["labels"]
    with torch.no_grad():
        pred = out.logits[:, :-1].argmax(-1)
        gold = labels[:, 1:].to(pred.device)
        mask = gold != -100
        correct, total = ((pred == gold) & mask).sum(), mask.sum()
    if host_reads:
        return out.loss, float(correct), float(total)
    return out.loss, None, None


@dataclass
class StepResult:
    """What one optimizer step measured (sums over its micro-batches; ``loss`` is their mean); with
    ``host_reads=False`` only ``samples`` (the other figures stay None)."""

    loss: float | None = 0.0
    grad_norm: float | None = None
    correct: float | None = 0.0
    total: float | None = 0.0
    tokens: float | None = 0.0
    samples: int = 0


def train_step(model: Any, batches: Sequence[Any], *, optimizer: Any, scheduler: Any, max_grad_norm: float,
               make_batch: Callable[[Any], dict[str, Any]] | None = None, engine: Any = None, ddp: Any = None,
               scaler: Any = None, autocast: Any = None, on_phase: Callable[[str], None] | None = None,
               host_reads: bool = True) -> StepResult:
    """One optimizer step over ``batches`` (its micro-batches, in order).

    ``make_batch(item)`` turns each entry into the model's inputs just before its forward (so a step never holds more
    than one encoded micro-batch); without it the entries are the inputs. ``model`` is the module whose trainable
    parameters are clipped; the forward runs through ``engine`` (DeepSpeed), else ``ddp``, else ``model``. Under
    DeepSpeed, ``optimizer``/``scheduler`` are the engine's and are not stepped here.
    """
    import torch

    module = engine or ddp or model
    n = len(batches)
    result = StepResult()
    step_loss = 0.0
    phase = on_phase or (lambda name: None)
    for i, item in enumerate(batches):
        batch = item if make_batch is None else make_batch(item)
        last = i == n - 1
        sync = contextlib.nullcontext() if (ddp is None or last) else ddp.no_sync()
        with sync:
            if engine is not None:
                engine.set_gradient_accumulation_boundary(last)
            phase("forward")
            loss, correct, total = forward_with_accuracy(module, batch, autocast, host_reads)
            phase("backward")
            scaled = loss / n
            if engine is not None:
                engine.backward(scaled, scale_wrt_gas=False)
                engine.step()
            elif scaler is not None:
                scaler.scale(scaled).backward()
            else:
                scaled.backward()
        if host_reads:
            step_loss += float(loss.detach()) / n
            result.correct += correct
            result.total += total
            result.tokens += float(batch["attention_mask"].sum())
        result.samples += int(batch["input_ids"].shape[0])
        del loss, scaled
    phase("optimizer")
    if engine is not None:
        norm = engine.get_global_grad_norm()
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        if scaler is not None:
            scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm) if max_grad_norm > 0 else None
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    if not host_reads:
        result.loss = result.correct = result.total = result.tokens = None
        return result
    result.loss = step_loss
    result.grad_norm = None if norm is None else float(norm)
    return result


def current_lr(scheduler: Any, engine: Any = None) -> float:
    """The learning rate of the first parameter group (DeepSpeed's when ``engine`` is given)."""
    if engine is not None:
        return float(engine.get_lr()[0])
    return float(scheduler.get_last_lr()[0])
