"""The optimizer and LR schedule of ``vlmref sft`` without DeepSpeed (HF Trainer's choices), and the DDP wrapper.

::

    from vlmref.training.optim import build_optimizer, build_scheduler, warmup_steps
    optimizer = build_optimizer(model, args)               # AdamW over the trainable parameters
    scheduler = build_scheduler(optimizer, args, max_steps=100)
    warmup_steps(100, 0.05)                                # 5

AdamW (betas ``adam_beta1/2`` = 0.9/0.999, eps 1e-8, ``weight_decay`` except biases and norm weights, as HF
Trainer), the ``lr_scheduler_type`` schedule (cosine) with ``ceil(max_steps * warmup_ratio)`` warmup steps. Under
``--deepspeed`` both come from the DeepSpeed config instead (``deepspeed_config``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from transformers import get_scheduler  # at import, not first use: the memory trace must not see import-time tensors

from ..llm.sft_args import SftArguments
from .dist import DistSetting


def decay_parameter_names(model: Any) -> set[str]:
    """Parameters that get weight decay: all but biases and the weights of norm layers (HF Trainer)."""
    import torch

    out: set[str] = set()
    for mod_name, module in model.named_modules():
        is_norm = isinstance(module, torch.nn.LayerNorm) or "norm" in type(module).__name__.lower()
        for p_name, _ in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if not is_norm and not p_name.endswith("bias") and not re.search(r"(^|[._])(layer)?norm", full.lower()):
                out.add(full)
    return out


def build_optimizer(model: Any, args: SftArguments):
    """``torch.optim.AdamW`` over the trainable parameters: a decay group and a no-decay group (empty ones left out)."""
    import torch

    decay = decay_parameter_names(model)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in params if n in decay], "weight_decay": args.weight_decay},
              {"params": [p for n, p in params if n not in decay], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=args.learning_rate,
                             betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)


def warmup_steps(max_steps: int, warmup_ratio: float) -> int:
    """``ceil(max_steps * warmup_ratio)``."""
    return math.ceil(max_steps * warmup_ratio)


def build_scheduler(optimizer: Any, args: SftArguments, max_steps: int):
    """transformers' ``get_scheduler(lr_scheduler_type)`` with ``warmup_steps`` warmup over ``max_steps`` steps."""
    return get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=warmup_steps(max_steps, args.warmup_ratio),
                         num_training_steps=max_steps)


def wrap_ddp(model: Any, args: SftArguments, dist: DistSetting) -> Any:
    """``DistributedDataParallel(model)`` with ms-swift's buffer setting and vlmref's ``find_unused_parameters``."""
    import inspect

    import torch
    from torch.nn.parallel import DistributedDataParallel

    find_unused = args.ddp_find_unused_parameters
    broadcast = args.ddp_broadcast_buffers
    if find_unused is None:
        # ms-swift: `not gradient_checkpointing`. vlmref: always True, because every LLaVA/Yi-VL model leaves
        # the last CLIP layer unused (features come from layer -2): with False, DDP fails on step 2 with
        # "Expected to have finished reduction in the prior iteration" (LoRA DEFAULT wraps that layer's q/k/v)
        find_unused = True
    if broadcast is None:
        broadcast = not args.gradient_checkpointing
    device_ids = [dist.local_rank] if torch.cuda.is_available() else None
    sync = ("forward_sync_buffers" if "forward_sync_buffers" in
            inspect.signature(DistributedDataParallel.__init__).parameters else "broadcast_buffers")
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused,
                                   **{sync: broadcast})
