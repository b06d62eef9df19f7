"""``--resume_from_checkpoint DIR`` for ``vlmref sft``: the weights (adapter or full), optimizer, scheduler, every
rank's RNG state and the data position (derived from ``global_step``; also recorded in ``trainer_state.json``), so a
resumed run continues with exactly the losses of an uninterrupted one (fp32 on CPU: bit-identical, tested). Every
file is read with ``weights_only=True`` (``safe_state``).

::

    from vlmref.training.resume import load_adapter, read_trainer_state
    saved = read_trainer_state("output/.../checkpoint-4")   # {} when the folder has no trainer_state.json
    load_adapter(peft_model, "output/.../checkpoint-4")     # refuses an adapter of other rank/targets

A full checkpoint without DeepSpeed is a complete model: the recipe loads it in place of the base model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from ..llm.safe_state import load_plain, safe_deepspeed_loads
from ..llm.sft_args import SftArgumentError, SftArguments


def read_trainer_state(ckpt: str) -> dict[str, Any]:
    """``<ckpt>/trainer_state.json``, or ``{}`` without one."""
    state_path = os.path.join(ckpt, "trainer_state.json")
    if not os.path.isfile(state_path):
        return {}
    with open(state_path, encoding="utf-8") as f:
        return json.load(f)


def load_deepspeed_state(engine: Any, ckpt: str, saved: dict[str, Any], args: SftArguments) -> None:
    """``engine.load_checkpoint`` of ``<ckpt>/global_step<N>/`` (N from ``saved``), files read safely; with
    ``--resume_only_model`` the module only."""
    tag = f"global_step{saved.get('global_step')}"
    safe_deepspeed_loads(engine)  # DeepSpeed itself would torch.load(weights_only=False)
    load_path, _ = engine.load_checkpoint(ckpt, tag=tag, load_module_strict=args.sft_type == "full",
                                          load_optimizer_states=not args.resume_only_model,
                                          load_lr_scheduler_states=not args.resume_only_model,
                                          load_module_only=args.resume_only_model)
    if load_path is None:
        raise SftArgumentError(f"{ckpt}: no DeepSpeed state {tag}/ (was it written by a --deepspeed run?)")


def load_optimizer_state(optimizer: Any, scheduler: Any, ckpt: str, global_step: int,
                         log: Callable[[str], None]) -> None:
    """``optimizer.pt`` and ``scheduler.pt`` (without DeepSpeed). No ``optimizer.pt``: a warning (the AdamW moments
    restart); no ``scheduler.pt``: the scheduler is stepped ``global_step`` times."""
    opt_path, sch_path = os.path.join(ckpt, "optimizer.pt"), os.path.join(ckpt, "scheduler.pt")
    if os.path.isfile(opt_path):
        optimizer.load_state_dict(load_plain(opt_path))
    else:
        log(f"warning: {ckpt} has no optimizer.pt (saved with --save_only_model true, ms-swift's default "
            "for full): the AdamW moments restart from zero, so the losses will differ from an "
            "uninterrupted run; train with --save_only_model false for an exact resume")
    if os.path.isfile(sch_path):
        scheduler.load_state_dict(load_plain(sch_path))
    else:
        for _ in range(global_step):
            scheduler.step()


def layout_differences(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The entries of ``now`` (world_size, batch_size, ...) that ``saved`` records with another value: (saved, now)."""
    return {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) is not None and saved.get(k) != v}


def load_adapter(model: Any, ckpt: str, log: Callable[[str], None] = print) -> None:
    """Load ``<ckpt>/adapter_model.safetensors`` into the peft ``model``; refused when the saved rank or target list
    differs from the model's, or when a key is not in the model."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    config_path = os.path.join(ckpt, "adapter_config.json")
    weights = os.path.join(ckpt, "adapter_model.safetensors")
    if not os.path.isfile(weights):
        raise SftArgumentError(f"{ckpt}: no adapter_model.safetensors (not a LoRA checkpoint?)")
    with open(config_path, encoding="utf-8") as f:
        saved = json.load(f)
    now = model.peft_config["default"]
    saved_targets = saved.get("target_modules")
    now_targets = now.target_modules
    if isinstance(saved_targets, list) and not isinstance(now_targets, str):
        if set(saved_targets) != set(now_targets) or saved.get("r") != now.r:
            raise SftArgumentError(f"{ckpt}: the adapter (r={saved.get('r')}, targets {sorted(saved_targets)}) "
                                   f"does not match this run (r={now.r}, targets {sorted(now_targets)})")
    result = set_peft_model_state_dict(model, load_file(weights))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise SftArgumentError(f"{ckpt}: adapter keys not in the model: {unexpected[:5]}")
    log(f"loaded the LoRA adapter from {ckpt}")
