"""``vlmref bench``: measure memory scenarios on this machine's GPUs, and gate results against a baseline.

::

    vlmref bench --documented --out bench.json                       # the 16 seed footprints (CUDA)
    PYTHONPATH=. python -m vlmref bench --documented --out_dir bench-results   # one GPU, from a plain checkout:
        # measured vs predicted vs documented (bench.md), each scenario's allocator snapshot and its replay
    vlmref bench --model_type qwen-vl-chat --mode sft --text_tokens 64 --out qwen.json
    vlmref bench --documented --device cpu --tiny --out smoke.json   # the same code path, tiny models on CPU
    torchrun --nproc_per_node 4 -m vlmref.cli.bench --documented --only llava1d6-mistral-7b-instruct/full/4gpu \\
        --out zero2.json                                             # world_size > 1 scenarios
    vlmref bench --compare baseline.json --tolerance 0.05 bench.json # regression gate (exit 1 on a regression)
    vlmref bench --compare_documented bench.json                     # measured vs the seeds' GB, +-10%
    vlmref bench --args_file scenario.yaml --device cpu --tiny       # flags from a JSON/YAML file (flags override it)

Exit codes: 0 done / gate passed, 1 a scenario failed with an error or the gate found a regression, 2 bad flags or no
CUDA (without ``--device cpu``). ``python -m vlmref.cli.bench`` is the same command (what torchrun runs).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..arguments import DataclassArgumentParser, arg, dataclass_from, parse_or_report
from .scenario_args import ScenarioArguments, scenario_from_args

NO_CUDA = ("error: vlmref bench measures real GPU memory and needs CUDA, and torch sees no CUDA device here.\n"
           "  - the CPU prediction of the same scenarios: vlmref memory --documented\n"
           "  - a measurement on a GPU host with docker and the NVIDIA container toolkit: nox -s bench-a100\n"
           "  - a smoke test of this code path on CPU (tiny models): vlmref bench --device cpu --tiny ...")
GATE_GROUP = "regression gate (no scenario runs)"


@dataclass
class _BenchFlags:
    """``vlmref bench``'s options-group flags; a base of ``BenchArguments`` *after* ``ScenarioArguments`` so that they
    come first (dataclass fields follow the reversed MRO) and stay in the options group, before the scenario group."""

    documented: bool = arg(False, "the 16 footprints the seeds document")
    only: list[str] | None = arg(None, "with --documented: just these keys; None: all 16", metavar="KEY")
    device: Literal["cuda", "cpu"] | None = arg(None, "where the scenarios run: cuda (exit 2 without CUDA) or cpu (with "
                                                      "--tiny: a smoke test of the code path); None: cuda",
                                                choices=["cuda", "cpu"])
    tiny: bool = arg(False, "tiny configs of the same architectures (smoke test)")
    steps: int | None = arg(None, "sft: optimizer steps (None: 2; >= 2: the peak is in step 2); infer: repetitions of "
                                  "the generation (None: 1; tokens/s from the later ones)")
    out: str | None = arg(None, "results JSON (schema vlmref-bench/1), written atomically; None: not saved")
    out_dir: str | None = arg(None, "a results folder: bench.json, bench.md (measured vs predicted vs documented), "
                                    "environment.json and, on CUDA, each scenario's allocator snapshot "
                                    "<key>.snapshot.json (JSON, no stack frames) replayed by vlmref memory replay",
                              metavar="DIR")
    predict: bool | None = arg(None, "next to each measurement, vlmref memory's prediction of the same scenario "
                                     "(vlmref.memory.simulate, on CPU; in a worker process while CUDA measures); "
                                     "None: on with --documented")
    snapshot_entries: int = arg(3_000_000, "--out_dir on CUDA: the allocator history entries kept per scenario "
                                           "(torch.cuda.memory._record_memory_history max_entries)")


@dataclass
class BenchArguments(ScenarioArguments, _BenchFlags):
    """``vlmref bench``'s flags: the run's options, the scenario's, then the regression gate's (``RESULT.json``, the
    gate's positional argument, is not a field: ``build_parser`` adds it to the gate's group)."""

    ARGUMENT_GROUPS: ClassVar[dict[str, str]] = {**ScenarioArguments.ARGUMENT_GROUPS, "compare": GATE_GROUP}

    compare: str | None = arg(None, "compare RESULT.json against BASELINE.json; exit 1 on a regression",
                              metavar="BASELINE.json")
    compare_documented: bool = arg(False, "compare RESULT.json's measurements with the seeds' documented GB per GPU")
    tolerance: float | None = arg(None, "the relative change allowed; None: 0.05 (--compare), 0.10 "
                                        "(--compare_documented)")
    allow_missing: bool = arg(False, "--compare: list missing keys without failing")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="measure memory scenarios on this machine's GPUs; --compare: regression gate",
                       description=__doc__)
    build_parser(p)
    return p


def build_parser(p: DataclassArgumentParser | None = None) -> DataclassArgumentParser:
    """The ``vlmref bench`` flags (``BenchArguments``) and the gate's ``RESULT.json`` on ``p`` (a new parser: the
    standalone ``python -m vlmref.cli.bench``)."""
    p = p if p is not None else DataclassArgumentParser(prog="vlmref bench", description=__doc__)
    p.add_dataclass(BenchArguments)
    (gate,) = [g for g in p._action_groups if g.title == GATE_GROUP]
    gate.add_argument("result", nargs="?", default=None, metavar="RESULT.json", help="the file the gate checks")
    p.set_defaults(func=run_namespace)
    return p


def _gate(args: BenchArguments, result_path: str | None) -> int:
    from ..bench import ArtifactError, load_artifact
    from ..bench.gate import DOCUMENTED_TOLERANCE, compare, compare_documented

    if result_path is None:
        print("error: the gate needs RESULT.json (e.g. vlmref bench --compare base.json new.json)", file=sys.stderr)
        return 2
    try:
        result = load_artifact(result_path)
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

    def f(v: Any, spec: str = ".3f") -> str:
        return "-" if v is None else format(v, spec)

    predicted = any("predicted" in r for r in results)
    replayed = any("snapshot" in r for r in results)
    head = ["key", "status", "reserved GiB", "allocated GiB", "max nvidia-smi GiB", "documented", "tokens/s"]
    head += ["predicted reserved", "predicted nvidia-smi"] if predicted else []
    head += ["replay reserved"] if replayed else []
    rows = []
    for r in results:
        smi = [d.get("nvidia_smi_gib") for d in r["per_device"].values() if d.get("nvidia_smi_gib") is not None]
        row = [r["key"], r["status"], f(r["peak_reserved_gib"]), f(r["peak_allocated_gib"]),
               f(max(smi) if smi else None), f(r["documented_gib"], "g"), f(r["tokens_per_second"], ".1f")]
        if predicted:
            pred = r.get("predicted") or {}
            row += [f(pred.get("reserved_gib")), f(pred.get("nvidia_smi_gib"))]
        if replayed:
            row.append(f(r.get("replay_peak_reserved_gib")))
        rows.append(row)
    return "\n".join(text_table(head, rows))


def run_namespace(ns: argparse.Namespace) -> int:
    return run(dataclass_from(BenchArguments, ns), ns.result)


def run(args: BenchArguments, result_path: str | None = None) -> int:
    """Run the scenarios ``args`` describes, or the gate on ``result_path`` (RESULT.json)."""
    if args.compare or args.compare_documented:
        return _gate(args, result_path)
    if result_path is not None:
        print(f"error: unexpected argument {result_path!r} (RESULT.json goes with --compare/--compare_documented)",
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
    if args.snapshot_entries < 1:
        print("error: --snapshot_entries must be >= 1", file=sys.stderr)
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
    out_dir = None
    if args.out_dir is not None:
        from ..bench.results import OutDirError, prepare_out_dir

        try:
            out_dir = prepare_out_dir(args.out_dir)
        except OutDirError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    import torch

    device = args.device or "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    return _run(items, args, device, out_dir)


def _run(items: list[Any], args: BenchArguments, device: str, out_dir: Any = None) -> int:
    """The scenarios; under torchrun every rank then meets the others and closes the process group, so no rank exits
    with the group's threads still running (gloo aborts such a process: "terminate called without an active
    exception")."""
    try:
        return _run_all(items, args, device, out_dir)
    finally:
        _close_process_group()


def _close_process_group() -> None:
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()


def _run_all(items: list[Any], args: BenchArguments, device: str, out_dir: Any = None) -> int:
    from ..bench import new_artifact, write_json_atomic
    from ..bench.env import environment
    from ..bench.gpu import RunExtras, run_items
    from ..bench.predict import Predictor
    from ..training.dist import get_dist_setting

    master = get_dist_setting().is_master

    def log(message: str) -> None:
        if master:
            print(message, flush=True)

    predict = args.documented if args.predict is None else args.predict
    # on CUDA the predictions run beside the measurements, in a worker process that sees no GPU
    predictor = Predictor(tiny=args.tiny, background=device == "cuda") if predict else None
    extras = RunExtras(predictor=predictor, out_dir=out_dir, snapshot_entries=args.snapshot_entries)
    try:
        results = run_items(items, device, tiny=args.tiny, steps=args.steps, documented=args.documented, log=log,
                            extras=extras)
    finally:
        if predictor is not None:
            predictor.close()
    if not master:
        return 0
    artifact = new_artifact(environment(), results, device=device, tiny=args.tiny)
    print(_results_table(results))
    if args.out:
        print(f"results written to {write_json_atomic(args.out, artifact)}")
    if out_dir is not None:
        from ..bench.results import write_out_dir

        written = write_out_dir(out_dir, artifact)
        snapshots = sum(1 for r in results if (r.get("snapshot") or {}).get("file"))
        print(f"results folder {out_dir}: {', '.join(p.name for p in written)}"
              + (f" and {snapshots} allocator snapshot(s)" if snapshots else ""))
    if not args.out and out_dir is None:
        print("(no --out or --out_dir: results not saved)")
    errors = [r["key"] for r in results if r["status"] == "error"]
    if errors:
        print(f"error: {len(errors)} scenario(s) failed: {', '.join(errors)}", file=sys.stderr)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    from ..models.model_types import MODELS

    args = parse_or_report(build_parser(), argv)  # one error: line, as `vlmref bench`
    if args is None:
        return 2
    if args.model_type is not None and args.model_type not in MODELS:
        print(f"error: unknown model_type {args.model_type!r}; known: {', '.join(MODELS.names())}", file=sys.stderr)
        return 2
    return run_namespace(args)


if __name__ == "__main__":
    raise SystemExit(main())
