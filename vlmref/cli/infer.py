"""``vlmref infer``: interactive chat or dataset evaluation (ms-swift 2.2.0 ``swift infer`` flags).

::

    vlmref infer --model_type yi-vl-6b-chat [--model_id_or_path DIR]
    vlmref infer --ckpt_dir output/yi-vl-6b-chat/v0-20240705-163000/checkpoint-100 --load_dataset_config true
    python -m vlmref.cli.infer --model_type qwen-vl-chat --temperature 0

Booleans are written ``true``/``false`` as in ms-swift (a bare ``--flag`` is true); list flags take several values
(or one comma-separated); Optional flags take ``None``. The flags are ``InferArguments``' fields
(``vlmref.llm.infer``); ``vlmref infer args.yaml`` or ``--args_file FILE`` reads them from a JSON/YAML file, flags on
the command line override it.
"""

from __future__ import annotations

import argparse
import sys

from ..arguments import DataclassArgumentParser, parse_or_report


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``infer`` on the ``vlmref`` sub-command parser."""
    from ..llm.infer import InferArguments

    p = sub.add_parser("infer", help="chat with a model (interactive) or evaluate it on a dataset's validation split",
                       description=__doc__)
    p.add_dataclass(InferArguments)
    p.set_defaults(func=run)
    return p


def build_parser() -> DataclassArgumentParser:
    """The standalone parser (``python -m vlmref.cli.infer``)."""
    from ..llm.infer import InferArguments

    return DataclassArgumentParser(InferArguments, prog="vlmref infer", description=__doc__)


def run(args: argparse.Namespace) -> int:
    from ..arguments import dataclass_from
    from ..errors import VlmrefError
    from ..llm.infer import InferArguments, llm_infer

    try:
        infer_args = dataclass_from(InferArguments, args)  # __post_init__ resolves and checks the values
        llm_infer(infer_args)
    except (VlmrefError, ValueError, FileNotFoundError, KeyError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    ns = parse_or_report(build_parser(), argv)
    return 2 if ns is None else run(ns)


if __name__ == "__main__":
    raise SystemExit(main())
