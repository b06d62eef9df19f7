"""The ``MemoryScenario`` flags shared by ``vlmref memory`` (CPU prediction) and ``vlmref bench`` (GPU measurement)."""

from __future__ import annotations

import argparse
from typing import Any

from ..flags import add_bool_flag

# `vlmref sft --deepspeed`'s names; the scenario models the ZeRO stage (zero2/zero3) of ms-swift's default configs
DEEPSPEED_METAVAR = "{default-zero2,default-zero3,zero3-offload,PATH.json}"


def image_size(text: str) -> tuple[int, int]:
    """``HEIGHTxWIDTH`` -> ``(height, width)``, e.g. ``480x640``."""
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 480x640; got {text!r}") from None
    return h, w


def add_scenario_arguments(p: argparse.ArgumentParser) -> None:
    """``MemoryScenario``'s fields as flags (default None: the dataclass default applies)."""
    g = p.add_argument_group("scenario (instead of --documented)")
    g.add_argument("--model_type", default=None)
    g.add_argument("--mode", choices=["infer", "sft"], default=None)
    g.add_argument("--sft_type", choices=["lora", "full"], default=None)
    g.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default=None)
    for name in ("max_length", "text_tokens", "images", "batch_size", "lora_rank", "lora_alpha", "world_size",
                 "devices_per_process", "new_tokens"):
        g.add_argument(f"--{name}", type=int, default=None)
    g.add_argument("--image_size", type=image_size, default=None, help="HEIGHTxWIDTH (default 480x640)")
    add_bool_flag(g, "--gradient_checkpointing", None, "recompute activations in backward; None: the registry's, per "
                  "model", allow_none=True)
    g.add_argument("--lora_target_modules", nargs="+", default=None, help="default DEFAULT")
    g.add_argument("--deepspeed", default=None, metavar=DEEPSPEED_METAVAR,
                   help="sft: DeepSpeed ZeRO over --world_size ranks, named as in vlmref sft; a PATH.json gives its "
                        "zero_optimization.stage (2 or 3), the rest as ms-swift's default-zero2/3; CPU offload "
                        "(zero3-offload) is not modelled and refused (default: None, no DeepSpeed)")
    g.add_argument("--attention", choices=["sdpa", "eager"], default=None,
                   help="sdpa (vlmref's models, default) or eager (ms-swift 2.2.0's default loading)")


def scenario_from_args(args: argparse.Namespace) -> Any:
    """The ``MemoryScenario`` the flags describe (``ScenarioError`` on a bad combination)."""
    from ..memory.scenario import MemoryScenario, ScenarioError
    from ..models.model_types import MODELS

    if args.mode is None:
        raise ScenarioError("--model_type needs --mode infer|sft")
    fields = {k: getattr(args, k) for k in MemoryScenario.__dataclass_fields__
              if k not in ("model_type", "mode", "notes") and getattr(args, k, None) is not None}
    if "lora_target_modules" in fields:
        fields["lora_target_modules"] = tuple(fields["lora_target_modules"])
    if "deepspeed" in fields:
        fields["deepspeed"] = zero_stage(fields["deepspeed"])
    return MemoryScenario(MODELS.canonical(args.model_type), args.mode, **fields)


def zero_stage(value: str) -> str:
    """``--deepspeed`` as ``vlmref sft`` names it -> the scenario's ``zero2`` / ``zero3`` (``ScenarioError`` naming the
    flag for a bad name or file, a stage other than 2/3, or CPU/NVMe offload, which the scenarios do not model)."""
    import json

    from ..llm.sft_args import DEEPSPEED_NAMES, SftArgumentError, load_deepspeed_config
    from ..memory.scenario import ScenarioError

    try:
        config = load_deepspeed_config(value)
    except SftArgumentError as err:
        hint = f" (did you mean default-{value}?)" if value in ("zero2", "zero3") else ""
        raise ScenarioError(f"{err}{hint}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ScenarioError(f"--deepspeed {value!r}: cannot read it as a DeepSpeed JSON config ({err})") from None
    zero = config.get("zero_optimization") if isinstance(config, dict) else None
    stage = zero.get("stage") if isinstance(zero, dict) else None
    if stage not in (2, 3):
        raise ScenarioError(f"--deepspeed {value!r}: zero_optimization.stage is {stage!r}; memory scenarios model "
                            f"ZeRO stage 2 or 3 ({', '.join(n for n in DEEPSPEED_NAMES if 'offload' not in n)})")
    offload = [f"{key} to {zero[key]['device']}" for key in ("offload_optimizer", "offload_param")
               if isinstance(zero.get(key), dict) and str(zero[key].get("device", "none")).lower() != "none"]
    if offload:
        raise ScenarioError(f"--deepspeed {value}: {', '.join(offload)} is not modelled (memory scenarios keep the "
                            f"ZeRO states on the GPUs); use --deepspeed default-zero{stage}")
    return f"zero{stage}"
