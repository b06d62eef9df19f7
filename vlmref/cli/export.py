"""``vlmref export --merge_lora true``: merge a LoRA checkpoint into a full model folder ``<ckpt_dir>-merged``.

::

    $ vlmref export --ckpt_dir output/qwen-vl-chat/v0-20240101-000000/checkpoint-100 --merge_lora true
    merged_lora_path: output/qwen-vl-chat/v0-20240101-000000/checkpoint-100-merged
    ...
    Successfully merged LoRA and saved in output/qwen-vl-chat/v0-20240101-000000/checkpoint-100-merged
    $ vlmref infer --ckpt_dir output/qwen-vl-chat/v0-20240101-000000/checkpoint-100-merged

Flags keep ms-swift 2.2.0's names (``--merge_device_map`` auto|cpu, ``--dtype`` AUTO = the training dtype).
Exit status: 0 merged (or already merged), 1 the checkpoint cannot be merged (the message says why), 2 usage.
The flags are ``ExportArguments``' fields (``vlmref.arguments``): ``vlmref export args.yaml`` or ``--args_file FILE``
reads them from a JSON/YAML file, flags on the command line override it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Literal

from ..arguments import DataclassArgumentParser, arg, dataclass_from, parse_or_report


@dataclass
class ExportArguments:
    """``vlmref export``'s flags (ms-swift 2.2.0's ``swift export`` names)."""

    ckpt_dir: str | None = arg(None, "the LoRA checkpoint folder (.../vx-xxx/checkpoint-xxx)")
    merge_lora: bool = arg(False, "true: merge the LoRA into the base model")
    merge_device_map: Literal["auto", "cpu"] = arg("auto", "where the model is loaded for merging; auto: the GPUs if "
                                                           "any, else CPU")
    dtype: Literal["AUTO", "bf16", "fp16", "fp32"] = arg("AUTO", "dtype of the merged weights (AUTO: the training "
                                                                 "dtype from sft_args.json)")
    overwrite: bool = arg(False, "redo the merge when <ckpt_dir>-merged already exists")
    tokenizer_id_or_path: str | None = arg(None, "the tokenizer's folder when the base model has none; None: the "
                                                 "checkpoint's sft_args.json's")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="merge a LoRA checkpoint into a full model folder (--merge_lora true)")
    p.add_dataclass(ExportArguments)
    p.set_defaults(func=run)
    return p


def build_parser() -> DataclassArgumentParser:
    """The standalone parser (``python -m vlmref.cli.export``)."""
    return DataclassArgumentParser(ExportArguments, prog="vlmref export", description=__doc__.split("\n\n")[0])


def run(ns: argparse.Namespace) -> int:
    from ..errors import VlmrefError
    from ..llm.export import merge_lora

    args = dataclass_from(ExportArguments, ns)
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
    ns = parse_or_report(build_parser(), argv)
    return 2 if ns is None else run(ns)


if __name__ == "__main__":
    raise SystemExit(main())
