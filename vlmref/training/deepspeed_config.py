"""DeepSpeed for ``vlmref sft``: the config's ``"auto"`` values filled as HF Trainer fills them, and the engine.

::

    from vlmref.llm.sft_args import load_deepspeed_config
    from vlmref.training.deepspeed_config import fill_deepspeed_config
    config = fill_deepspeed_config(load_deepspeed_config("default-zero2"), args, model, max_steps=100, world_size=2,
                                   cpu=False, log=print)
    config["train_batch_size"]   # batch_size * gradient_accumulation_steps * world_size

With ``--deepspeed`` the optimizer and scheduler are DeepSpeed's, built from the config (so ``default-zero2/3`` train
with DeepSpeed's ``WarmupDecayLR``, warm-up then linear decay, as ms-swift 2.2.0 through HF Trainer does). On CPU the
AdamW entry gets ``"torch_adam": true`` (torch's AdamW instead of a JIT-compiled fused kernel) and pinned-memory
offload is switched off; both adjustments are logged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..llm.sft_args import SftArgumentError, SftArguments
from .optim import warmup_steps


def _hidden_size(model: Any) -> int | None:
    config = getattr(model, "config", None)
    for c in (config, getattr(config, "text_config", None), getattr(config, "llm_config", None)):
        if c is not None and getattr(c, "hidden_size", None):
            return int(c.hidden_size)
    return None


def fill_deepspeed_config(config: dict[str, Any], args: SftArguments, model: Any, max_steps: int, world_size: int,
                          cpu: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Replace the config's ``"auto"`` values as HF Trainer does (``trainer_config_process/finalize``); a non-auto
    value that disagrees with the flags is an error. On CPU: ``torch_adam`` and no pinned-memory offload (logged)."""
    config = json.loads(json.dumps(config))
    mismatches: list[str] = []

    def fill(path: str, value: Any, must_match: bool = True) -> None:
        node = config
        *parents, key = path.split(".")
        for p in parents:
            if p not in node:
                return
            node = node[p]
        if key not in node:
            return
        if node[key] == "auto":
            node[key] = value
        elif must_match and node[key] != value:
            mismatches.append(f"- ds {path}={node[key]} vs vlmref {value}")

    gas = args.gradient_accumulation_steps
    fill("train_micro_batch_size_per_gpu", args.batch_size)
    fill("gradient_accumulation_steps", gas)
    fill("train_batch_size", args.batch_size * gas * world_size)
    fill("gradient_clipping", args.max_grad_norm)
    fill("optimizer.params.lr", args.learning_rate)
    fill("optimizer.params.betas", [args.adam_beta1, args.adam_beta2])
    fill("optimizer.params.eps", args.adam_epsilon)
    fill("optimizer.params.weight_decay", args.weight_decay)
    fill("scheduler.params.warmup_min_lr", 0, must_match=False)
    fill("scheduler.params.warmup_max_lr", args.learning_rate)
    fill("scheduler.params.total_num_steps", max_steps)
    fill("scheduler.params.warmup_num_steps", max(1, warmup_steps(max_steps, args.warmup_ratio)))
    fill("fp16.enabled", bool(args.fp16))
    fill("bf16.enabled", bool(args.bf16))
    zero = config.get("zero_optimization", {})
    if any(zero.get(k) == "auto" for k in ("reduce_bucket_size", "stage3_prefetch_bucket_size",
                                             "stage3_param_persistence_threshold")):
        hidden = _hidden_size(model)
        if hidden is None:
            raise SftArgumentError("the model config has no hidden_size to fill the DeepSpeed 'auto' bucket sizes; "
                                   "give them numeric values in the JSON config")
        fill("zero_optimization.reduce_bucket_size", hidden * hidden, must_match=False)
        if zero.get("stage") == 3:
            fill("zero_optimization.stage3_prefetch_bucket_size", int(0.9 * hidden * hidden), must_match=False)
            fill("zero_optimization.stage3_param_persistence_threshold", 10 * hidden, must_match=False)
    config.setdefault("checkpoint", {})["use_node_local_storage"] = True  # ms-swift: save_on_each_node=True
    if mismatches:
        raise SftArgumentError("DeepSpeed config values disagree with the flags (set them to \"auto\"):\n"
                               + "\n".join(mismatches))
    if cpu:
        opt = config.get("optimizer", {})
        if opt.get("type", "").lower() in ("adam", "adamw") and "torch_adam" not in opt.get("params", {}):
            opt.setdefault("params", {})["torch_adam"] = True
            log("DeepSpeed on CPU: optimizer.params.torch_adam = true (torch.optim.AdamW; DeepSpeed's fused Adam "
                "would need a JIT-compiled CPU kernel)")
        for key in ("offload_optimizer", "offload_param"):
            if zero.get(key, {}).get("pin_memory"):
                zero[key]["pin_memory"] = False
                log(f"DeepSpeed on CPU: zero_optimization.{key}.pin_memory = false (pinned memory needs a GPU)")
    return config


def init_deepspeed(model: Any, args: SftArguments, max_steps: int, world_size: int, log: Callable[[str], None]
                   ) -> tuple[Any, Any, Any]:
    """``deepspeed.initialize`` over the trainable parameters with ``args.deepspeed_config`` filled (the filled config
    is stored back in ``args``, so ``sft_args.json`` shows it); returns (engine, optimizer, scheduler)."""
    import deepspeed
    import torch

    config = fill_deepspeed_config(args.deepspeed_config, args, model, max_steps, world_size,
                                   cpu=not torch.cuda.is_available(), log=log)
    args.deepspeed_config = config
    params = [p for p in model.parameters() if p.requires_grad]
    engine, optimizer, _, scheduler = deepspeed.initialize(model=model, model_parameters=params, config=config)
    log(f"DeepSpeed ZeRO stage {config.get('zero_optimization', {}).get('stage', 0)}: optimizer "
        f"{type(optimizer).__name__}, scheduler {type(scheduler).__name__}")
    return engine, optimizer, scheduler
