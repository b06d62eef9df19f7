"""``vlmref bench``: measure memory scenarios on this machine's GPUs, and gate results against a baseline.

::

    vlmref bench --documented --out bench.json                       # the 16 seed footprints (CUDA)
    vlmref bench --model_type qwen-vl-chat --mode sft --text_tokens 64 --out qwen.json
    vlmref bench --documented --device cpu --tiny --out smoke.json   # the same code path, tiny models on CPU
    torchrun --nproc_per_node 4 -m vlmref.cli.bench --documented --only llava1d6-mistral-7b-instruct/full/4gpu \\
        --out zero2.json                                             # world_size > 1 scenarios
    vlmref bench --compare baseline.json --tolerance 0.05 bench.json # regression gate (exit 1 on a regression)
    vlmref bench --compare_documented bench.json                     # measured vs the seeds' GB, +-10%

Exit codes: 0 done / gate passed, 1 a scenario failed with an error or the gate found a regression, 2 bad flags or no
CUDA (without ``--device cpu``). ``python -m vlmref.cli.bench`` is the same command (what torchrun runs).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..flags import FlagParser, add_bool_flag
from .scenario_args import add_scenario_arguments, scenario_from_args

NO_CUDA = ("error: vlmref bench measures real GPU memory and needs CUDA, and torch sees no CUDA device here.\n"
           "  - the CPU prediction of the same scenarios: vlmref memory --documented\n"
           "  - a measurement on a GPU host with docker and the NVIDIA container toolkit: nox -s bench-a100\n"
           "  - a smoke test of this code path on CPU (tiny models): vlmref bench --device cpu --tiny ...")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="measure memory scenarios on this machine's GPUs; --compare: regression gate",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    build_parser(p)
    return p


def build_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_bool_flag(p, "--documented", False, "the 16 footprints the seeds document")
    p.add_argument("--only", nargs="+", default=None, metavar="KEY", help="with --documented: just these keys")
    add_scenario_arguments(p)
    p.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default cuda (exit 2 without it)")
    add_bool_flag(p, "--tiny", False, "tiny configs of the same architectures (smoke test)")
    p.add_argument("--steps", type=int, default=None,
                   help="sft: optimizer steps (default 2, >= 2: the peak is in step 2); infer: repetitions of the "
                        "generation (default 1; tokens/s from the later ones)")
    p.add_argument("--out", default=None, help="results JSON (schema vlmref-bench/1), written atomically")
    gate = p.add_argument_group("regression gate (no scenario runs)")
    gate.add_argument("--compare", metavar="BASELINE.json", default=None,
                      help="compare RESULT.json against BASELINE.json; exit 1 on a regression")
    add_bool_flag(gate, "--compare_documented", False,
                  "compare RESULT.json's measurements with the seeds' documented GB per GPU")
    gate.add_argument("--tolerance", type=float, default=None,
                      help="relative; default 0.05 (--compare), 0.10 (--compare_documented)")
    add_bool_flag(gate, "--allow_missing", False, "--compare: list missing keys without failing")
    gate.add_argument("result", nargs="?", default=None, metavar="RESULT.json", help="the file the gate checks")
    p.set_defaults(func=run_namespace)
    return p


def _gate(args: argparse.Namespace) -> int:
    from ..bench import ArtifactError, load_artifact
    from ..bench.gate import DOCUMENTED_TOLERANCE, compare, compare_documented

    if args.result is None:
        print("error: the gate needs RESULT.json (e.g. vlmref bench --compare base.json new.json)", file=sys.stderr)
        return 2
    try:
        result = load_artifact(args.result)
        if args.compare_documented:
            cmp = compare_documented(result, DOCUMENTED_TOLERANCE if args.tolerance is None else args.tolerance)
        else:
            cmp = compare(load_artifact(args.compare), result, 0.05 if args.tolerance is None else args.tolerance,
                          allow_missing=args.allow_missing)
    except (ArtifactError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(cmp.table())
    return 0 if cmp.ok else 1


def _results_table(results: list[dict[str, Any]]) -> str:
    from ..bench.gate import text_table

    head = ["key", "status", "reserved GiB", "allocated GiB", "max nvidia-smi GiB", "documented", "tokens/s"]
    rows = []
    for r in results:
        smi = [d.get("nvidia_smi_gib") for d in r["per_device"].values() if d.get("nvidia_smi_gib") is not None]

        def f(v: Any, spec: str = ".3f") -> str:
            return "-" if v is None else format(v, spec)

        rows.append([r["key"], r["status"], f(r["peak_reserved_gib"]), f(r["peak_allocated_gib"]),
                     f(max(smi) if smi else None), f(r["documented_gib"], "g"), f(r["tokens_per_second"], ".1f")])
    return "\n".join(text_table(head, rows))


def run_namespace(args: argparse.Namespace) -> int:
    if args.compare or args.compare_documented:
        return _gate(args)
    if args.result is not None:
        print(f"error: unexpected argument {args.result!r} (RESULT.json goes with --compare/--compare_documented)",
              file=sys.stderr)
        return 2
    if args.documented == (args.model_type is not None):
        print("error: give either --documented or --model_type X --mode infer|sft", file=sys.stderr)
        return 2
    if args.only and not args.documented:
        print("error: --only selects documented keys; it needs --documented", file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 1:
        print("error: --steps must be >= 1", file=sys.stderr)
        return 2
    from ..bench.gpu import BenchItem, documented_items
    from ..memory.scenario import ScenarioError

    try:
        if args.documented:
            items = documented_items(args.only)
        else:
            scenario = scenario_from_args(args)
            items = [BenchItem(scenario.label(), scenario)]
    except (KeyError, ScenarioError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 2 and any(i.scenario.mode == "sft" for i in items):
        print("error: sft needs --steps >= 2 (the optimizer states are live from the second step on)", file=sys.stderr)
        return 2
    import torch

    device = args.device or "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    return _run(items, args, device)


def _run(items: list[Any], args: argparse.Namespace, device: str) -> int:
    from ..bench import new_artifact, write_json_atomic
    from ..bench.env import environment
    from ..bench.gpu import run_items
    from ..training.dist import get_dist_setting

    master = get_dist_setting().is_master

    def log(message: str) -> None:
        if master:
            print(message, flush=True)

    results = run_items(items, device, tiny=args.tiny, steps=args.steps, documented=args.documented, log=log)
    if not master:
        return 0
    artifact = new_artifact(environment(), results, device=device, tiny=args.tiny)
    print(_results_table(results))
    if args.out:
        print(f"results written to {write_json_atomic(args.out, artifact)}")
    else:
        print("(no --out: results not saved)")
    errors = [r["key"] for r in results if r["status"] == "error"]
    if errors:
        print(f"error: {len(errors)} scenario(s) failed: {', '.join(errors)}", file=sys.stderr)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    from ..models.model_types import MODELS

    args = build_parser(FlagParser(prog="vlmref bench", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)).parse_args(argv)
    if args.model_type is not None and args.model_type not in MODELS:
        print(f"error: unknown model_type {args.model_type!r}; known: {', '.join(MODELS.names())}", file=sys.stderr)
        return 2
    return run_namespace(args)


if __name__ == "__main__":
    raise SystemExit(main())
