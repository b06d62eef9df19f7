"""``vlmref model-info`` and ``vlmref create-tiny``.

::

    vlmref model-info --model_type cogvlm-17b-instruct [--image_size 480x640] [--json]
    vlmref create-tiny --model_type qwen-vl-chat --out /tmp/tiny-qwen-vl [--tokenizer_dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys

from ..flags import add_bool_flag
from .scenario_args import image_size


def add_parsers(sub: argparse._SubParsersAction) -> None:
    info = sub.add_parser("model-info", help="parameter counts per component, image tokens, LoRA targets (meta device)")
    info.add_argument("--model_type", required=True)
    info.add_argument("--image_size", type=image_size, default=(480, 640), help="HEIGHTxWIDTH (default 480x640)")
    info.add_argument("--lora_rank", type=int, default=8)
    add_bool_flag(info, "--json", False, "print JSON instead of the text report")
    info.set_defaults(func=run_model_info)

    tiny = sub.add_parser("create-tiny", help="write a tiny random-weight checkpoint that get_model_tokenizer loads")
    tiny.add_argument("--model_type", required=True)
    tiny.add_argument("--out", required=True)
    tiny.add_argument("--tokenizer_dir", default=None, help="the family's tokenizer files (default ../shared/tokenizers)")
    tiny.add_argument("--seed", type=int, default=0)
    add_bool_flag(tiny, "--overwrite", False, "replace an existing --out folder")
    tiny.set_defaults(func=run_create_tiny)


def run_model_info(args: argparse.Namespace) -> int:
    from ..models.info import format_model_info, model_info

    info = model_info(args.model_type, image_size=args.image_size, rank=args.lora_rank)
    print(json.dumps(info, indent=1) if args.json else format_model_info(info))
    return 0


def run_create_tiny(args: argparse.Namespace) -> int:
    from ..models.tiny import create_tiny_checkpoint

    try:
        out = create_tiny_checkpoint(args.model_type, args.out, tokenizer_dir=args.tokenizer_dir, seed=args.seed,
                                     overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"tiny {args.model_type} checkpoint written to {out}")
    print(f"load it with: get_model_tokenizer({args.model_type!r}, model_id_or_path={str(out)!r})")
    return 0
