"""``vlmref conform``: check another framework's template encoder against vlmref's reference encoding.

::

    vlmref conform --adapter my_pkg.encoders:encode                       # every covered model type, official
    vlmref conform --adapter my_pkg.encoders:encode --profile swift-2.2.0 --model_type qwen-vl-chat \\
        --report conform.md --json conform.json
    vlmref conform --adapter swift22_adapter:encode --adapter_path benchmarks/conform/adapters \\
        --adapter_python .venv-swift/bin/python                           # the adapter in its own venv

The adapter is ``encode(model_type, example, **options) -> {"input_ids", "labels", ...}`` (README, "Checking an
encoder: vlmref conform"). Per model type it runs the golden scenarios and the oracle samples of its template, and
prints how many cases are equal; ``--report`` adds, for the first case of each kind of difference, a token-aligned
view and the recorded deviation that explains it. Exit codes: 0 every case equal, 1 a case differs, 2 bad flags, an
adapter that cannot be loaded, or no tokenizer files.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from ..arguments import arg, dataclass_from
from .template_args import TemplateProfile


@dataclass
class ConformArguments:
    """``vlmref conform``'s flags."""

    adapter: str = arg(help="the encoder under test as module:function (or module:object with an encode method)",
                       metavar="MODULE:FUNCTION")
    profile: TemplateProfile = arg("official", "the reference: official (the model authors' formats) or "
                                               "swift-2.2.0 (ms-swift 2.2.0's, oracle-checked)")
    model_type: list[str] | None = arg(None, "just these model types (vlmref list models); None: every one the "
                                             "adapter covers", metavar="MODEL_TYPE")
    report: str | None = arg(None, "write the markdown report (summary, then the first case of each kind of "
                                   "difference) to this path", metavar="PATH")
    json: str | None = arg(None, "write the JSON report (every differing case) to this path", metavar="PATH")
    adapter_path: list[str] | None = arg(None, "folders put first on the adapter's import path", metavar="DIR")
    adapter_python: str | None = arg(None, "run the adapter in this interpreter (its own venv), through "
                                           "vlmref/conform/worker.py; None: in this process", metavar="PYTHON")
    explain: bool = arg(True, "look for the recorded deviations that explain each difference")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    c = sub.add_parser("conform", help="check a framework's template encoder against vlmref's reference; exit 1 if "
                                       "any case differs", description=__doc__)
    c.add_dataclass(ConformArguments)
    c.set_defaults(func=run_namespace)
    return c


def run_namespace(ns: argparse.Namespace) -> int:
    return run(dataclass_from(ConformArguments, ns))


def run(args: ConformArguments) -> int:
    from ..conform.adapter import AdapterError, load_adapter, worker_adapter
    from ..conform.report import dump_json, markdown_report, model_summary, summary_table
    from ..conform.run import ConformError, run_conform
    from ..models.model_types import MODELS
    from ..utils import atomic_write_bytes

    for name in args.model_type or []:
        if name not in MODELS:
            print(f"error: --model_type {name!r}: unknown; known: {', '.join(MODELS.names())}", file=sys.stderr)
            return 2
    try:
        adapter = (worker_adapter(args.adapter_python, args.adapter, args.adapter_path or [])
                   if args.adapter_python else load_adapter(args.adapter, args.adapter_path or []))
    except AdapterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = run_conform(adapter, args.profile, args.model_type, explain=args.explain,
                             log=lambda m: print(m, file=sys.stderr, flush=True))
    except ConformError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        adapter.close()
    if not result["reports"]:
        print(f"error: {args.adapter} covers none of the model types asked for", file=sys.stderr)
        return 2
    rows = [model_summary(r) for r in result["reports"]]
    print(summary_table(rows))
    if args.report:
        atomic_write_bytes(args.report, markdown_report(result).encode(), mode=0o644)
    if args.json:
        atomic_write_bytes(args.json, dump_json(result).encode(), mode=0o644)
    differ = sum(r["differ"] for r in rows)
    compared = sum(r["cases"] - r["skipped"] for r in rows)
    print(f"{compared - differ}/{compared} cases equal ({differ} differ) in {result['seconds']:.0f} s")
    return 1 if differ else 0
