"""``vlmref infer``: interactive chat or dataset evaluation (ms-swift 2.2.0 ``swift infer`` flags).

::

    vlmref infer --model_type yi-vl-6b-chat [--model_id_or_path DIR]
    vlmref infer --ckpt_dir output/yi-vl-6b-chat/v0-20240705-163000/checkpoint-100 --load_dataset_config true
    python -m vlmref.cli.infer --model_type qwen-vl-chat --temperature 0

Booleans are written ``true``/``false`` as in ms-swift (a bare ``--flag`` is true); list flags take several values
(or one comma-separated).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..flags import FlagParser, add_bool_flag


def _none_or(kind):
    def convert(text: str):
        return None if text.strip().lower() == "none" else kind(text)

    convert.__name__ = kind.__name__
    return convert


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..llm.infer import cli_fields

    for f in cli_fields():
        kind = str(f.type)
        options: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f.metadata.get("help", "")}
        if "bool" in kind:  # unset flags stay out of the namespace: InferArguments' default applies
            add_bool_flag(parser, f"--{f.name}", argparse.SUPPRESS, options["help"], shown=f.default)
            continue
        if kind.startswith("list"):
            options["nargs"] = "*" if f.name == "stop_words" else "+"
        elif kind.startswith("int"):
            options["type"] = _none_or(int) if "None" in kind else int
        elif kind.startswith("float"):
            options["type"] = _none_or(float) if "None" in kind else float
        parser.add_argument(f"--{f.name}", **options)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``infer`` on the ``vlmref`` sub-command parser."""
    p = sub.add_parser("infer", help="chat with a model (interactive) or evaluate it on a dataset's validation split",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    p.set_defaults(func=run)
    return p


def build_parser() -> argparse.ArgumentParser:
    p = FlagParser(prog="vlmref infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..errors import VlmrefError
    from ..llm.infer import InferArguments, llm_infer

    values = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    try:
        infer_args = InferArguments(**values)
        llm_infer(infer_args)
    except (VlmrefError, ValueError, FileNotFoundError, KeyError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
