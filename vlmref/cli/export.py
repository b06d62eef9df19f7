"""``vlmref export --merge_lora true``: merge a LoRA checkpoint into a full model folder ``<ckpt_dir>-merged``.

::

    $ vlmref export --ckpt_dir output/qwen-vl-chat/v0-20240101-000000/checkpoint-100 --merge_lora true
    merged_lora_path: output/qwen-vl-chat/v0-20240101-000000/checkpoint-100-merged
    ...
    Successfully merged LoRA and saved in output/qwen-vl-chat/v0-20240101-000000/checkpoint-100-merged
    $ vlmref infer --ckpt_dir output/qwen-vl-chat/v0-20240101-000000/checkpoint-100-merged

Flags keep ms-swift 2.2.0's names (``--merge_device_map`` auto|cpu, ``--dtype`` AUTO = the training dtype).
Exit status: 0 merged (or already merged), 1 the checkpoint cannot be merged (the message says why), 2 usage.
"""

from __future__ import annotations

import argparse
import sys

from ..flags import FlagParser, add_bool_flag


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt_dir", default=None, help="the LoRA checkpoint folder (.../vx-xxx/checkpoint-xxx)")
    add_bool_flag(p, "--merge_lora", False, "true: merge the LoRA into the base model")
    p.add_argument("--merge_device_map", default="auto", choices=["auto", "cpu"],
                   help="where the model is loaded for merging (default auto: the GPUs if any, else CPU)")
    p.add_argument("--dtype", default="AUTO", choices=["AUTO", "bf16", "fp16", "fp32"],
                   help="dtype of the merged weights (AUTO: the training dtype from sft_args.json)")
    add_bool_flag(p, "--overwrite", False, "redo the merge when <ckpt_dir>-merged already exists")
    p.add_argument("--tokenizer_id_or_path", default=None,
                   help="the tokenizer's folder when the base model has none (default: the checkpoint's sft_args.json)")
    p.set_defaults(func=run)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="merge a LoRA checkpoint into a full model folder (--merge_lora true)")
    _add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..errors import VlmrefError
    from ..llm.export import merge_lora

    if not args.merge_lora:
        print("error: nothing to export: pass --merge_lora true (vlmref export only merges LoRA checkpoints)",
              file=sys.stderr)
        return 2
    if not args.ckpt_dir:
        print("error: ckpt_dir is not specified: pass --ckpt_dir <output>/<model_type>/vx-xxx/checkpoint-xxx",
              file=sys.stderr)
        return 2
    try:
        merge_lora(args.ckpt_dir, merge_device_map=args.merge_device_map, dtype=args.dtype, overwrite=args.overwrite,
                   log=lambda msg: print(msg, flush=True), tokenizer_id_or_path=args.tokenizer_id_or_path)
    except (VlmrefError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = FlagParser(prog="vlmref export", description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
