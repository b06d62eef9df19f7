"""``vlmref model-info`` and ``vlmref create-tiny``.

::

    vlmref model-info --model_type cogvlm-17b-instruct [--image_size 480x640] [--json]
    vlmref create-tiny --model_type qwen-vl-chat --out /tmp/tiny-qwen-vl [--tokenizer_dir DIR]

Their flags are the fields of ``ModelInfoArguments`` and ``CreateTinyArguments`` (``vlmref.arguments``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from ..arguments import arg, dataclass_from
from .scenario_args import image_size, image_size_text


@dataclass
class ModelInfoArguments:
    """``vlmref model-info``'s flags."""

    model_type: str = arg(help="the model (vlmref list models)")
    image_size: str = arg("480x640", "HEIGHTxWIDTH of the image whose tokens are counted", type=image_size_text)
    lora_rank: int = arg(8, "LoRA rank r of the LoRA parameter count")
    json: bool = arg(False, "print JSON instead of the text report")


@dataclass
class CreateTinyArguments:
    """``vlmref create-tiny``'s flags."""

    model_type: str = arg(help="the model whose tiny random-weight checkpoint is written")
    out: str = arg(help="the checkpoint folder to write")
    tokenizer_dir: str | None = arg(None, "the family's tokenizer files; None: ../shared/tokenizers' family folder, "
                                            "else a byte-level stand-in")
    seed: int = arg(0, "seed of the random weights")
    overwrite: bool = arg(False, "replace an existing --out folder")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    info = sub.add_parser("model-info", help="parameter counts per component, image tokens, LoRA targets (meta device)")
    info.add_dataclass(ModelInfoArguments)
    info.set_defaults(func=run_model_info)

    tiny = sub.add_parser("create-tiny", help="write a tiny random-weight checkpoint that get_model_tokenizer loads")
    tiny.add_dataclass(CreateTinyArguments)
    tiny.set_defaults(func=run_create_tiny)


def run_model_info(ns: argparse.Namespace) -> int:
    from ..models.info import format_model_info, model_info

    args = dataclass_from(ModelInfoArguments, ns)
    info = model_info(args.model_type, image_size=image_size(args.image_size), rank=args.lora_rank)
    print(json.dumps(info, indent=1) if args.json else format_model_info(info))
    return 0


def run_create_tiny(ns: argparse.Namespace) -> int:
    from ..models.tiny import create_tiny_checkpoint

    args = dataclass_from(CreateTinyArguments, ns)
    try:
        out = create_tiny_checkpoint(args.model_type, args.out, tokenizer_dir=args.tokenizer_dir, seed=args.seed,
                                     overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"tiny {args.model_type} checkpoint written to {out}")
    print(f"load it with: get_model_tokenizer({args.model_type!r}, model_id_or_path={str(out)!r})")
    return 0
