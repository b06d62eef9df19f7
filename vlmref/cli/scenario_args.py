"""The ``MemoryScenario`` flags shared by ``vlmref memory`` (CPU prediction) and ``vlmref bench`` (GPU measurement)."""

from __future__ import annotations

import argparse
from typing import Any

from ..llm.sft_args import parse_bool


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
    g.add_argument("--gradient_checkpointing", type=parse_bool, default=None, help="default: the registry's, per model")
    g.add_argument("--lora_target_modules", nargs="+", default=None, help="default DEFAULT")
    g.add_argument("--deepspeed", choices=["zero2", "zero3"], default=None)
    g.add_argument("--attention", choices=["sdpa", "eager"], default=None,
                   help="sdpa (vlmref's models, default) or eager (ms-swift 2.2.0's default loading)")


def scenario_from_args(args: argparse.Namespace) -> Any:
    """The ``MemoryScenario`` the flags describe (``ScenarioError`` on a bad combination)."""
    from ..memory.scenario import MemoryScenario, ScenarioError
    from ..models.registry import MODELS

    if args.mode is None:
        raise ScenarioError("--model_type needs --mode infer|sft")
    fields = {k: getattr(args, k) for k in MemoryScenario.__dataclass_fields__
              if k not in ("model_type", "mode", "notes") and getattr(args, k, None) is not None}
    if "lora_target_modules" in fields:
        fields["lora_target_modules"] = tuple(fields["lora_target_modules"])
    return MemoryScenario(MODELS.canonical(args.model_type), args.mode, **fields)
