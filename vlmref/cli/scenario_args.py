"""The ``MemoryScenario`` flags shared by ``vlmref memory`` (CPU prediction) and ``vlmref bench`` (GPU measurement).

``ScenarioArguments`` holds them as a dataclass (``vlmref.arguments``); ``MemoryArguments`` (``vlmref.cli.memory``) and
``BenchArguments`` (``vlmref.cli.bench``) inherit them. Every scenario flag defaults to None, "not given": the
``MemoryScenario`` default applies (each flag's help names it), so ``scenario_from_args`` passes on only what was given.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..arguments import arg, dataclass_from
from ..memory.scenario import MemoryScenario

# `vlmref sft --deepspeed`'s names; the scenario models the ZeRO stage (zero2/zero3) of ms-swift's default configs
DEEPSPEED_METAVAR = "{default-zero2,default-zero3,zero3-offload,PATH.json}"
SCENARIO_GROUP = "scenario (instead of --documented)"

_DEFAULT = {f.name: f.default for f in dataclasses.fields(MemoryScenario)}  # what a flag left at None gets


def image_size(text: str) -> tuple[int, int]:
    """``HEIGHTxWIDTH`` -> ``(height, width)``, e.g. ``480x640``."""
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 480x640; got {text!r}") from None
    return h, w


def image_size_text(text: str) -> str:
    """``--image_size``'s argparse type: checks ``HEIGHTxWIDTH`` as the flag is parsed (the same error as
    ``image_size``) and keeps the text, the field's type; ``scenario_from_args`` makes it ``(height, width)``."""
    image_size(text)
    return text


def _one_of(kind: Any, help: str) -> Any:
    """An Optional ``Literal`` flag (None: the scenario default) whose choices, metavar and error list only
    ``kind``'s values, as before the dataclass (not ``{...,None}``)."""
    return arg(None, help, choices=list(typing.get_args(kind)))


def _default(name: str) -> str:
    """``MemoryScenario``'s default for ``name`` as the flag would give it (``480x640``, ``DEFAULT``)."""
    value = _DEFAULT[name]
    if name == "image_size":
        return "x".join(map(str, value))
    return " ".join(value) if isinstance(value, tuple) else str(value)


Mode = Literal["infer", "sft"]
SftType = Literal["lora", "full"]
Dtype = Literal["bf16", "fp16", "fp32"]
Attention = Literal["sdpa", "eager"]


@dataclass
class ScenarioArguments:
    """``MemoryScenario``'s fields as flags (``vlmref memory`` / ``vlmref bench``), in one argument group."""

    ARGUMENT_GROUPS: ClassVar[dict[str, str]] = {"model_type": SCENARIO_GROUP}

    model_type: str | None = arg(None, "the model of a single scenario (vlmref list models; ms-swift 2.2.0 aliases "
                                       "too); needs --mode; None: --documented's scenarios instead")
    mode: Mode | None = _one_of(Mode, "infer: the prefill of one sample, then --new_tokens decode steps with the KV "
                                      "cache (vlmref infer); sft: two optimizer steps of vlmref sft, so the "
                                      "optimizer states are live in the second; required with --model_type")
    sft_type: SftType | None = _one_of(SftType, "sft: lora trains LoRA adapters, full every parameter; None: "
                                                f"{_default('sft_type')}")
    dtype: Dtype | None = _one_of(Dtype, f"weights and compute dtype; None: {_default('dtype')}")
    max_length: int | None = arg(None, "the sample's text budget in positions (ms-swift 2.2.0's max_length: image "
                                       "positions come on top); without --text_tokens the sample fills it; None: "
                                       f"{_default('max_length')}")
    text_tokens: int | None = arg(None, "text positions besides the template markup and the query: the response "
                                        "(sft) or appended to the query (infer); None: as many as fill --max_length "
                                        "(the worst case the budget allows)")
    images: int | None = arg(None, f"images per sample; None: {_default('images')}")
    batch_size: int | None = arg(None, f"samples per device per step (sft); None: {_default('batch_size')}")
    lora_rank: int | None = arg(None, f"sft lora: LoRA rank r; None: {_default('lora_rank')}")
    lora_alpha: int | None = arg(None, f"sft lora: LoRA alpha; None: {_default('lora_alpha')}")
    world_size: int | None = arg(None, "data-parallel processes (DDP, or DeepSpeed ZeRO with --deepspeed), as "
                                       f"NPROC_PER_NODE; None: {_default('world_size')}")
    devices_per_process: int | None = arg(None, "GPUs one process splits the model over (device_map, as the seeds' "
                                                "CUDA_VISIBLE_DEVICES=0,1 without NPROC_PER_NODE); None: "
                                                f"{_default('devices_per_process')}")
    new_tokens: int | None = arg(None, f"infer: decode steps after the prefill; None: {_default('new_tokens')}")
    image_size: str | None = arg(None, f"each image's HEIGHTxWIDTH in pixels, e.g. 480x640; None: "
                                       f"{_default('image_size')}", type=image_size_text)
    gradient_checkpointing: bool | None = arg(None, "recompute activations in backward; None: the registry's, per "
                                                    "model")
    lora_target_modules: list[str] | None = arg(None, "sft lora: the modules LoRA wraps, as in vlmref sft: DEFAULT "
                                                      "(the model's list), ALL (every Linear but the output head) "
                                                      "or module names; "
                                                      f"None: {_default('lora_target_modules')}")
    deepspeed: str | None = arg(None, "sft: DeepSpeed ZeRO over --world_size ranks, named as in vlmref sft; a "
                                      "PATH.json gives its zero_optimization.stage (2 or 3), the rest as ms-swift's "
                                      "default-zero2/3; CPU offload (zero3-offload) is not modelled and refused; "
                                      "None: no DeepSpeed", metavar=DEEPSPEED_METAVAR)
    attention: Attention | None = _one_of(Attention, "sdpa (vlmref's models) or eager (ms-swift 2.2.0's default "
                                                     f"loading: the (heads, L, L) matrix in memory); None: "
                                                     f"{_default('attention')}")
    legacy_stack: bool | None = arg(None, "model the logits as the stack of the seeds' runs had them (transformers "
                                          "4.4x, remote code): every prefill position's logits, float32 where that "
                                          "code upcast them (vlmref memory: with --documented / --anchors too, "
                                          "every row); None: False (vlmref's own)")


def scenario_from_args(args: ScenarioArguments | argparse.Namespace) -> MemoryScenario:
    """The ``MemoryScenario`` the flags describe (``ScenarioError`` on a bad combination); ``args`` is a
    ``ScenarioArguments`` (or a subclass) or the namespace a parser with its flags returned."""
    from ..memory.scenario import ScenarioError
    from ..models.model_types import MODELS

    if isinstance(args, argparse.Namespace):
        args = dataclass_from(ScenarioArguments, args)
    if args.mode is None:
        raise ScenarioError("--model_type needs --mode infer|sft")
    fields = {k: getattr(args, k) for k in MemoryScenario.__dataclass_fields__
              if k not in ("model_type", "mode", "notes") and getattr(args, k, None) is not None}
    if "image_size" in fields:
        try:
            fields["image_size"] = image_size(fields["image_size"])
        except argparse.ArgumentTypeError as err:  # a ScenarioArguments built in code, not parsed
            raise ScenarioError(f"--image_size: {err}") from None
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
