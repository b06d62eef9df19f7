"""What a memory scenario runs, the same code for the FakeTensorMode trace (``simulate``), a real CPU run (the
simulator's validation test) and a real GPU run (``vlmref bench``).

* sft: ``STEPS`` optimizer steps of ``vlmref sft``'s own ``training.train_step`` (forward with the token accuracy,
  backward, clipping at ``max_grad_norm``, the optimizer and scheduler steps, ``zero_grad(set_to_none=True)``) with
  the optimizer and schedule of ``training.build_optimizer`` / ``build_scheduler`` (AdamW in torch's default
  foreach implementation, a weight-decay and a no-decay group), all from the scenario's ``sft_arguments``. Each step
  is one micro-batch: accumulating more adds no memory beyond one parameter's transient gradient. The second step
  runs with the optimizer states live, as every later step of a real run does.
* infer: the prefill of the prompt (images included), then ``new_tokens`` decode steps with the KV cache, driven
  through the model's own ``prepare_inputs_for_generation`` like ``generate()``; the token fed back is fixed (its value
  does not change memory or time), so no data-dependent sampling is needed.

``on_phase(name)`` is called before each phase ("forward", "backward", "optimizer", "prefill", "decode").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..models.kv_cache import cache_output, output_cache

# imported with this module, not inside a traced workload: a first import under the tracker would count module-level
# tensors (transformers.optimization makes some) in the traced peak of the first scenario of a process
from ..training.optim import build_optimizer, build_scheduler
from ..training.step import forward_with_accuracy, train_step
from .legacy import keep_last_logits
from .scenario import MemoryScenario
from .setup import sft_arguments

STEPS = 2


@dataclass
class WorkloadStats:
    steps: list[dict[str, Any]] = field(default_factory=list)
    # sft: the optimizer's parameter groups as ``{"params": [names], "weight_decay", "lr"}`` (what was traced)
    optimizer_groups: list[dict[str, Any]] = field(default_factory=list)

    def rate(self, key: str, skip_first: bool = True) -> float | None:
        """``key`` (tokens / samples) per second over the steps, the first one (warm-up) left out when possible."""
        steps = self.steps[1:] if skip_first and len(self.steps) > 1 else self.steps
        seconds = sum(s["seconds"] for s in steps)
        return None if seconds <= 0 else sum(s[key] for s in steps) / seconds


def _sync(device: Any) -> None:
    if torch.cuda.is_available() and str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _tokens(batch: dict[str, Any]) -> int:
    return int(batch["attention_mask"].sum())


def optimizer_groups(model: Any, optimizer: Any) -> list[dict[str, Any]]:
    """``optimizer``'s parameter groups by parameter name (with their weight decay and learning rate)."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [{"params": [names[id(p)] for p in g["params"]], "weight_decay": g["weight_decay"],
             "lr": g.get("initial_lr", g["lr"])} for g in optimizer.param_groups]


def run_sft(model: Any, batch: dict[str, Any], scenario: MemoryScenario, on_phase: Callable[[str], None],
            steps: int = STEPS, ddp: Any = None) -> WorkloadStats:
    """``steps`` train steps on ``batch``; the forward runs through ``ddp`` when given (its module is ``model``)."""
    args = sft_arguments(scenario)
    optimizer = build_optimizer(model, args)
    scheduler = build_scheduler(optimizer, args, max_steps=steps)
    stats = WorkloadStats(optimizer_groups=optimizer_groups(model, optimizer))
    device = next(p.device for p in model.parameters() if p.requires_grad)
    for _ in range(steps):
        start = time.perf_counter()
        train_step(model, [batch], optimizer=optimizer, scheduler=scheduler, max_grad_norm=args.max_grad_norm,
                   ddp=ddp, on_phase=on_phase, host_reads=False)
        _sync(device)
        stats.steps.append({"seconds": time.perf_counter() - start, "tokens": _tokens(batch),
                            "samples": int(batch["input_ids"].shape[0])})
    return stats


def run_forward_backward(model: Any, batch: dict[str, Any], on_phase: Callable[[str], None]) -> None:
    """One forward + backward without an optimizer (DeepSpeed scenarios: ZeRO owns gradients and states), the
    forward as ``training.train_step`` runs it (with the token accuracy)."""
    on_phase("forward")
    loss, _, _ = forward_with_accuracy(model, batch, host_reads=False)
    on_phase("backward")
    loss.backward()


def _full(shape: tuple[int, ...], value: int, like: torch.Tensor) -> torch.Tensor:
    return torch.full(shape, value, dtype=like.dtype, device=like.device)


def run_infer(model: Any, batch: dict[str, Any], scenario: MemoryScenario, on_phase: Callable[[str], None],
              fill_token: int = 0, full: Callable[..., torch.Tensor] = _full) -> WorkloadStats:
    """``full(shape, value, like)`` makes the integer tensors appended per step (the simulator makes them fake
    constants, so masks stay inspectable)."""
    stats = WorkloadStats()
    extras = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask", "labels")}
    input_ids, mask = batch["input_ids"], batch["attention_mask"]
    past = None
    device = input_ids.device
    import inspect

    keep = ({"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters
            and keep_last_logits(scenario) else {})
    with torch.no_grad():
        for step in range(scenario.new_tokens + 1):
            start = time.perf_counter()
            on_phase("prefill" if step == 0 else "decode")
            length = input_ids.shape[1]
            fresh = length if step == 0 else 1
            inputs = model.prepare_inputs_for_generation(
                input_ids, **cache_output(past), attention_mask=mask, use_cache=True, next_sequence_length=fresh,
                is_first_iteration=step == 0, **extras)
            out = model(**{**keep, **inputs})  # generate() keeps the last position's logits only (not legacy)
            past = output_cache(out)
            del out
            rows = (input_ids.shape[0], 1)
            input_ids = torch.cat([input_ids, full(rows, fill_token, input_ids)], dim=1)
            mask = torch.cat([mask, full(rows, 1, mask)], dim=1)
            for key in ("token_type_ids", "im_mask"):
                if key in extras:  # generated tokens are text
                    extras[key] = torch.cat([extras[key], full(rows, 0, extras[key])], dim=1)
            _sync(device)
            stats.steps.append({"seconds": time.perf_counter() - start, "tokens": fresh,
                                "samples": 0 if step == 0 else int(input_ids.shape[0])})
    return stats


def run_workload(model: Any, batch: dict[str, Any], scenario: MemoryScenario,
                 on_phase: Callable[[str], None] | None = None, full: Callable[..., torch.Tensor] = _full
                 ) -> WorkloadStats:
    phase = on_phase or (lambda name: None)
    if scenario.mode == "infer":
        return run_infer(model, batch, scenario, phase, full=full)
    return run_sft(model, batch, scenario, phase)
