"""LoRA for ``vlmref sft``: which Linear modules peft wraps, and the wrapping itself.

::

    from vlmref.training.lora import group_module_names, lora_module_names, resolve_lora_target_modules
    targets = resolve_lora_target_modules(model, "qwen-vl-chat", ["DEFAULT"])   # ['c_attn']
    group_module_names(lora_module_names(model, targets))   # ['transformer.h.*.attn.c_attn (32)']

Targets (a choice, documented): ``DEFAULT`` is the registry's list matched the way ms-swift 2.2.0 matches it, by peft
suffix matching on the whole model. For Yi-VL and every LLaVA model ``['q_proj', 'k_proj', 'v_proj']`` thus also wraps
the CLIP vision tower's q/k/v (LLaVA-NeXT/llava-hf: 72 CLIP + the LLM's; Yi-VL-6B: 96 + 96), although the seeds say
"LLM only": vlmref keeps this because the seeds' memory figures were measured with it. The vision-tower adapters do
train (the towers run with grad), except the last CLIP layer's, whose output is never used (the features come from
layer -2): those stay zero, and DDP therefore runs with ``find_unused_parameters=True``. CogVLM, Qwen-VL and XComposer2
DEFAULTs only match LLM modules. ``ALL`` is every Linear except the output head (``lm_head`` / InternLM2's
``output``). The resolved suffix list and every wrapped module (grouped) are logged at start and stored in
``sft_args.json`` (``lora_target_modules``, ``lora_target_module_names``). To restrict LoRA to the LLM, pass ms-swift
>= 2.2.5's ``--lora_target_regex`` (full match on module names), e.g. ``'.*language_model.*[.](q_proj|k_proj|v_proj)'``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from ..llm.sft_args import SftArgumentError, SftArguments


def resolve_lora_target_modules(model: Any, model_type: str, targets: Iterable[str]) -> list[str]:
    """``DEFAULT`` -> the registry's list, ``ALL`` -> ``find_all_linears`` (every Linear but the output head), other
    entries kept; order kept, duplicates dropped (ms-swift ``_prepare_target_modules`` + tuner.py)."""
    from ..models.info import resolve_lora_targets

    out: list[str] = []
    for t in targets:
        out += resolve_lora_targets(model, model_type, t) if t in ("DEFAULT", "ALL") else [t]
    return list(dict.fromkeys(out))


def lora_module_names(model: Any, targets: list[str] | None = None, regex: str | None = None) -> list[str]:
    """Qualified names of the Linear modules peft wraps: suffix matching for a list, full match for a regex."""
    import torch

    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if regex is not None:
        return [n for n in names if re.fullmatch(regex, n)]
    return [n for n in names if any(n == t or n.endswith("." + t) for t in targets or [])]


def group_module_names(names: list[str]) -> list[str]:
    """``model.layers.0.q_proj`` ... -> ``model.layers.*.q_proj (32)``: a short view of a long module list."""
    groups: dict[str, int] = {}
    for n in names:
        key = re.sub(r"\.\d+(?=\.|$)", ".*", n)
        groups[key] = groups.get(key, 0) + 1
    return [f"{k} ({v})" for k, v in groups.items()]


def add_lora(model: Any, args: SftArguments, log: Callable[[str], None] = print) -> Any:
    """``get_peft_model(model, LoraConfig(...))`` with the flags' rank/alpha/dropout/bias and the resolved targets.

    Records the resolution in ``args`` (``lora_target_modules`` becomes the resolved suffix list,
    ``lora_target_module_names`` the wrapped modules: both go to ``sft_args.json``) and logs it; a target list that
    matches no Linear module is an ``SftArgumentError``.
    """
    from peft import LoraConfig, get_peft_model

    targets = resolve_lora_target_modules(model, args.model_type, args.lora_target_modules)
    names = lora_module_names(model, targets, args.lora_target_regex)
    if not names:
        raise SftArgumentError(f"--lora_target_modules {targets} (regex {args.lora_target_regex!r}) matches no "
                               f"Linear module of {args.model_type}")
    args.lora_target_modules = targets
    args.lora_target_module_names = names
    log(f"lora_target_modules: {targets}" + (f", lora_target_regex: {args.lora_target_regex!r}"
                                             if args.lora_target_regex else ""))
    log(f"LoRA wraps {len(names)} Linear module(s): " + "; ".join(group_module_names(names)))
    config = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout_p,
                        target_modules=args.lora_target_regex or targets, bias=args.lora_bias_trainable,
                        task_type="CAUSAL_LM")
    from ..noise import quiet_known_warnings

    with quiet_known_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing
        return get_peft_model(model, config)
