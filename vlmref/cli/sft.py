"""``vlmref sft``: fine-tune with ms-swift 2.2.0's flags (see ``vlmref.llm.sft`` and ``vlmref.llm.sft_args``).

::

    vlmref sft --model_type qwen-vl-chat --dataset coco-en-mini-sample#4 --model_id_or_path /tmp/tiny-qwen-vl
    NPROC_PER_NODE=2 vlmref sft --model_type qwen-vl-chat --dataset coco-en-mini-sample --deepspeed default-zero2

    vlmref sft args.json --max_steps 10   # a JSON/YAML file of flags first (ms-swift's parse_args); flags override it
    vlmref sft --args_file args.yaml --max_steps 10

Wiring: ``add_parser(subparsers)`` registers the subcommand on the main parser; ``main(argv)`` is the standalone
entry (``python -m vlmref.cli.sft ...``, which is also what the torchrun relaunch runs). Exit codes: 0 done, 2 bad
flags or input (one ``error:`` line naming file, row and field; a missing package, path or hub id, with the fix;
``--debug`` shows the traceback).
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
        elif isinstance(value, str) and (not value.strip() or value.startswith("-")):
            argv.append(f"--{f.name}={value}")  # one word: '' / ' ' / '-x' reach the child as this flag's value
        else:
            argv += [f"--{f.name}", "None" if value is None else str(value)]
    return argv


def run_namespace(ns: argparse.Namespace) -> int:
    from ..arguments import dataclass_from, is_args_file
    from ..llm.launch import maybe_relaunch
    from ..llm.sft_args import SftArgumentError, SftArguments

    stray = [s for s in getattr(ns, "_stray", None) or [] if s.strip()]
    if stray:
        where = ("; an arguments file goes first: vlmref sft args.json [flags] (or --args_file FILE)"
                 if is_args_file(stray[0]) else "")
        print(f"error: unexpected argument(s) {stray}{where}", file=sys.stderr)
        return 2
    try:
        _check_before_launch(ns)
        code = maybe_relaunch(MODULE, namespace_to_argv(ns))
        if code is not None:
            return code
        args = dataclass_from(SftArguments, ns)
    except SftArgumentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return _run(args)


def _check_before_launch(args) -> None:
    """Missing packages and paths, checked before a torchrun relaunch (the ranks check them again, cheaply)."""
    from ..llm.sft_precheck import check_extras, check_local_paths

    check_extras(args.sft_type, args.deepspeed)
    check_local_paths(args)


def _run(args) -> int:
    from ..errors import DatasetRowError
    from ..llm.sft import llm_sft
    from .user_errors import report_error

    try:
        llm_sft(args)
    except DatasetRowError as err:
        if getattr(err, "reason", None) == "too_long":  # one line: the rule is in the message, the fixes here
            err = DatasetRowError(err.source, err.line, err.field, err.expected,
                                  f"{err.found} (raise --max_length, or --check_dataset_strategy discard drops such "
                                  "rows before training, each counted)", err.reason, row=getattr(err, "row", None))
        return report_error(err)
    except Exception as err:  # SftArgumentError, VlmrefError, missing packages, paths, hub: one line, exit 2
        return report_error(err)
    return 0


def main(argv: list[str] | None = None) -> int:
    from ..llm.launch import maybe_relaunch
    from ..llm.sft_args import SftArgumentError, clean_argv, parse_sft_args
    from .user_errors import debug_flag

    with debug_flag(list(sys.argv[1:] if argv is None else argv)) as argv:
        argv = clean_argv(argv)
        try:
            args = parse_sft_args(argv)
            _check_before_launch(args)
        except SftArgumentError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        code = maybe_relaunch(MODULE, argv)
        if code is not None:
            return code
        return _run(args)


if __name__ == "__main__":
    raise SystemExit(main())
