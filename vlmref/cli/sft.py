"""``vlmref sft``: fine-tune with ms-swift 2.2.0's flags (see ``vlmref.llm.sft`` and ``vlmref.llm.sft_args``).

::

    vlmref sft --model_type qwen-vl-chat --dataset coco-en-mini-sample#4 --model_id_or_path /tmp/tiny-qwen-vl
    NPROC_PER_NODE=2 vlmref sft --model_type qwen-vl-chat --dataset coco-en-mini-sample --deepspeed default-zero2

Wiring: ``add_parser(subparsers)`` registers the subcommand on the main parser; ``main(argv)`` is the standalone
entry (``python -m vlmref.cli.sft ...``, which is also what the torchrun relaunch runs). Exit codes: 0 done, 1 the
run failed on a data/model error (message on stderr), 2 bad flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

MODULE = "vlmref.cli.sft"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..llm.sft_args import build_parser

    p = sub.add_parser("sft", help="LoRA / full fine-tuning (ms-swift 2.2.0 flags; NPROC_PER_NODE relaunches torchrun)",
                       allow_abbrev=False)
    build_parser(p)
    # stray positionals: a copied seed command ending in '\ ' passes a blank argument
    p.add_argument("_stray", nargs="*", help=argparse.SUPPRESS)
    p.set_defaults(func=run_namespace)
    return p


def namespace_to_argv(ns: argparse.Namespace) -> list[str]:
    """The flags that differ from the defaults, as ``--name value`` (used to relaunch under torchrun)."""
    from ..llm.sft_args import SftArguments

    defaults = SftArguments()
    argv: list[str] = []
    for f in dataclasses.fields(SftArguments):
        value = getattr(ns, f.name, getattr(defaults, f.name))
        if value == getattr(defaults, f.name):
            continue
        if isinstance(value, list):
            argv += [f"--{f.name}", *map(str, value)]
        elif isinstance(value, bool):
            argv += [f"--{f.name}", "true" if value else "false"]
        else:
            argv += [f"--{f.name}", "None" if value is None else str(value)]
    return argv


def run_namespace(ns: argparse.Namespace) -> int:
    from ..llm.launch import maybe_relaunch
    from ..llm.sft_args import SftArgumentError, args_from_namespace

    stray = [s for s in getattr(ns, "_stray", None) or [] if s.strip()]
    if stray:
        print(f"error: unexpected argument(s) {stray}", file=sys.stderr)
        return 2
    code = maybe_relaunch(MODULE, namespace_to_argv(ns))
    if code is not None:
        return code
    try:
        args = args_from_namespace(ns)
    except SftArgumentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return _run(args)


def _run(args) -> int:
    from ..errors import DatasetRowError, VlmrefError
    from ..llm.sft import llm_sft
    from ..llm.sft_args import SftArgumentError

    try:
        llm_sft(args)
    except SftArgumentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DatasetRowError as err:
        hint = ""
        if getattr(err, "reason", None) == "too_long":
            hint = ("\nhint: with --max_length_counts_images true, --max_length bounds image positions too; raise "
                    "--max_length, or pass --check_dataset_strategy discard to drop such rows before training")
        print(f"error: {err}{hint}", file=sys.stderr)
        return 1
    except VlmrefError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    from ..llm.launch import maybe_relaunch
    from ..llm.sft_args import SftArgumentError, clean_argv, parse_sft_args

    argv = clean_argv(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parse_sft_args(argv)
    except SftArgumentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    code = maybe_relaunch(MODULE, argv)
    if code is not None:
        return code
    return _run(args)


if __name__ == "__main__":
    raise SystemExit(main())
