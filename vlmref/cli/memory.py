"""``vlmref memory``: predict peak GPU memory per device without a GPU (FakeTensorMode trace of the full-size model).

::

    vlmref memory --model_type qwen-vl-chat --mode sft --text_tokens 64          # one scenario, breakdown per device
    vlmref memory --model_type llava1d6-mistral-7b-instruct --mode sft --sft_type full \\
        --deepspeed default-zero2 --world_size 4 --json                           # as JSON
    vlmref memory --documented --out_dir memory_report                            # the seeds' 16 footprints:
                                                                                  # table + .md + .png + .json
    vlmref memory --chart_from memory_report/documented.json                      # redraw the .png from the .json
    vlmref memory --args_file scenario.yaml --batch_size 4                        # flags from a JSON/YAML file;
                                                                                  # the command line overrides it
    vlmref memory replay trace.json --alloc_conf expandable_segments:True --json  # replay a recorded allocation
                                                                                  # trace through vlmref's own model
                                                                                  # of the caching allocator

Figures are GiB. ``allocated`` is what ``torch.cuda.max_memory_allocated`` would show, ``reserved`` its
``max_memory_reserved`` (the traced allocations replayed through vlmref's caching-allocator model), ``nvidia_smi`` adds the CUDA context; the seeds' "GB GPU memory" is
compared with the last. ``--documented`` logs each scenario to stderr as it starts and ends (``[3/16] KEY ... 41.2 s,
about 6 min to go``); stdout has only the table (or the JSON). The chart needs matplotlib (``pip install
'vlmref[chart]'``); without it ``--documented`` writes the .md and .json and says so in a note on stderr.
Exit codes: 0 done, 1 ``--chart_from`` without matplotlib, 2 bad flags. ``vlmref memory replay --help``: the replay's
flags (peak allocated / reserved bytes of a ``torch.cuda.memory._snapshot()`` trace under allocator options).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..arguments import DataclassArgumentParser, arg, dataclass_from, parse_or_report
from .scenario_args import ScenarioArguments, scenario_from_args

CATEGORY_ORDER = ("parameters", "buffers", "gradients", "optimizer_states", "zero_model_states", "ddp_buckets",
                  "activations", "temporaries", "inputs", "kv_cache_extrapolated", "cublas_workspace")


@dataclass
class _MemoryFlags:
    """``vlmref memory``'s own flags; a base of ``MemoryArguments`` *after* ``ScenarioArguments`` so that they come
    first (dataclass fields follow the reversed MRO) and stay in the options group, before the scenario group."""

    documented: bool = arg(False, "the 16 footprints the seeds document, vs prediction")
    anchors: bool = arg(False, "the figures measured outside the seeds for the same models (ms-swift's example "
                               "scripts, Qwen-VL's README), vs prediction, in --documented's table format")
    only: list[str] | None = arg(None, "with --documented / --anchors: just these keys; None: all", metavar="KEY")
    out_dir: str = arg("memory_report", "--documented / --anchors: where <stem>.{md,png,json} go")
    stem: str | None = arg(None, "--documented / --anchors: the report files' name; None: documented / anchors")
    chart_from: str | None = arg(None, "redraw the chart of a written report from its .json (no tracing); to --out",
                                 metavar="JSON")
    out: str | None = arg(None, "--chart_from: the PNG; None: the JSON's path, .png", metavar="PNG")
    json: bool = arg(False, "print JSON instead of the table")
    tiny: bool = arg(False, "trace the tiny configs (a fast check of the tracing path)")


@dataclass
class MemoryArguments(ScenarioArguments, _MemoryFlags):
    """``vlmref memory``'s flags: its own (``--documented``, the report and chart files), then the scenario's."""


@dataclass
class MemoryReplayArguments:
    """``vlmref memory replay``'s flags (TRACE.json, the positional, is not a field: ``add_parser`` adds it)."""

    json: bool = arg(False, "print the report as JSON instead of the summary")
    device: int | None = arg(None, "a whole snapshot: replay only this device's trace; None: every device with "
                                   "entries", metavar="N")
    alloc_conf: str | None = arg(None, "allocator options in PYTORCH_CUDA_ALLOC_CONF's form, e.g. "
                                       "max_split_size_mb:128,roundup_power2_divisions:4 (over the environment's); "
                                       "None: PYTORCH_CUDA_ALLOC_CONF, else PYTORCH_ALLOC_CONF, else torch's defaults",
                                 metavar="CONF")
    device_memory_gib: float | None = arg(None, "the GiB the allocator may reserve: a new segment beyond it first "
                                                "releases the cached segments, then is an OOM; None: unlimited",
                                          metavar="X")


REPLAY_DESCRIPTION = """``vlmref memory replay TRACE.json``: replay a CUDA allocation trace through vlmref's own model of
PyTorch's caching allocator (vlmref/memory/allocator.py) and report peak allocated and peak reserved bytes.

::

    vlmref memory replay trace.json                                  # a JSON list of trace entries
    vlmref memory replay snapshot.json --device 0 --json             # a JSON-encoded torch.cuda.memory._snapshot()
    vlmref memory replay trace.json --alloc_conf max_split_size_mb:128,roundup_power2_divisions:4
    vlmref memory replay trace.json --device_memory_gib 80           # release cached segments, then OOM, beyond it

A recording with segment events (segment_alloc / segment_map) is compared with the model's new segments in order; the
report names the entry where they first part. Exit codes: 0 done (an OOM in the model is reported, not an error),
2 bad flags, options or trace.
"""


class _AnyWord(dict):
    """The sub-commands by name; once ``open``, argparse's choice check passes every word (``_MemoryCommands`` sorts
    them out)."""

    open = False

    def __contains__(self, word: object) -> bool:
        return self.open or dict.__contains__(self, word)


class _MemoryCommands(argparse._SubParsersAction):
    """``replay`` as the first word after ``memory``; any other word stays an unrecognised argument of ``vlmref
    memory`` (as it was before the sub-command existed)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._name_parser_map = self.choices = _AnyWord()

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if values and not dict.__contains__(self._name_parser_map, values[0]):
            vars(namespace).setdefault(argparse._UNRECOGNIZED_ARGS_ATTR, []).extend(values)
            return
        super().__call__(parser, namespace, values, option_string)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("memory", help="predict peak GPU memory per device (no GPU needed); --documented: the seeds' table"
                                      "; replay TRACE.json: a recorded allocation trace through the allocator model",
                       description=__doc__)
    p.add_dataclass(MemoryArguments)
    p.set_defaults(func=run_namespace)
    # hidden from `vlmref memory --help` (the docstring shows it), so that `vlmref memory args.yaml` stays an args file
    commands = p.add_subparsers(dest="memory_command", action=_MemoryCommands, help=argparse.SUPPRESS)
    r = commands.add_parser("replay", prog="vlmref memory replay", description=REPLAY_DESCRIPTION,
                            help="replay an allocation trace through vlmref's caching-allocator model")
    r.add_dataclass(MemoryReplayArguments)
    r.add_argument("trace", nargs="?", default=None, metavar="TRACE.json",
                   help="a JSON list of trace entries, or a JSON-encoded torch.cuda.memory._snapshot()")
    r.set_defaults(func=run_replay_namespace)
    commands.choices.open = True
    return p


def run_replay_namespace(ns: argparse.Namespace) -> int:
    return run_replay(dataclass_from(MemoryReplayArguments, ns), ns.trace)


def run_replay(args: MemoryReplayArguments, trace_path: str | None) -> int:
    """Load, replay, print; a user error (flags, options, an unreadable or contradictory trace) is one line, exit 2."""
    import os

    from ..memory.allocator import AllocatorConfigError
    from ..memory.replay import TraceError, format_report, load_trace, replay_file, resolve_config

    if trace_path is None:
        print("error: vlmref memory replay needs TRACE.json (a JSON list of trace entries or a memory snapshot)",
              file=sys.stderr)
        return 2
    if args.device_memory_gib is not None and not 0 < args.device_memory_gib < float("inf"):
        print(f"error: --device_memory_gib must be > 0, got {args.device_memory_gib}", file=sys.stderr)
        return 2
    limit = None if args.device_memory_gib is None else int(args.device_memory_gib * (1 << 30))
    try:
        config, source = resolve_config(args.alloc_conf, dict(os.environ))
        trace = load_trace(trace_path)
        report = replay_file(trace, config, device=args.device, device_memory=limit, source=source)
    except (AllocatorConfigError, TraceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def format_estimate(est: Any) -> str:
    gib = 1 << 30
    lines = [est.scenario.label(),
             f"  sample: {est.sample['positions']} positions ({est.sample['image_positions']} image), "
             f"tokenizer: {est.tokenizer}; gradient checkpointing: {est.gradient_checkpointing}; "
             f"peak in: {est.peak_phase}; traced in {est.seconds:.1f} s"]
    devices = list(est.per_device)
    shown = devices if len(devices) <= 8 else devices[:8]
    width = max(len(d) for d in shown)
    names = [c for c in CATEGORY_ORDER if any(est.per_device[d].get(c) for d in shown)]
    lines.append("  " + "device".ljust(width) + "".join(f"{c[:12]:>14}" for c in names)
                 + f"{'allocated':>12}{'reserved':>11}{'nvidia-smi':>12}")
    for d in shown:
        row = est.per_device[d]
        lines.append("  " + d.ljust(width) + "".join(f"{row.get(c, 0) / gib:>14.2f}" for c in names)
                     + f"{row['allocated'] / gib:>12.2f}{row['reserved'] / gib:>11.2f}{row['nvidia_smi'] / gib:>12.2f}")
    if len(devices) > len(shown):
        lines.append(f"  ... {len(devices) - len(shown)} more devices")
    lines += [f"  note: {n}" for n in est.notes]
    if est.kv_cache_bytes_per_token:
        measured = est.kv_cache_measured_bytes_per_step
        traced = "" if measured is None else f"; a traced decode step grew by {measured / 2**20:.3f} MiB"
        lines.append(f"  KV cache: {est.kv_cache_bytes_per_token / 2**20:.3f} MiB per token and sequence "
                     f"(layers x KV heads x head dim x 2 x dtype bytes){traced}")
    lines.append(f"  predicted peak: {est.predicted_gib:.2f} GiB on the busiest device (nvidia-smi style)")
    return "\n".join(lines)


_clock = time.perf_counter  # the scenarios' wall time (a test swaps in a fake clock)


def time_to_go(durations: list[float], remaining: int) -> str:
    """The ETA from the mean time of the finished scenarios: ``about 6 min to go`` (``done`` when none remain)."""
    if remaining <= 0:
        return "done"
    left = sum(durations) / len(durations) * remaining
    return f"about {left:.0f} s to go" if left < 90 else f"about {left / 60:.0f} min to go"


def _table_items(chosen: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """(item, its descriptive row fields) for documented footprints or anchors."""
    out = []
    for item in chosen:
        if hasattr(item, "footprint"):
            extra = {"launch": item.footprint.launch, "seed": item.footprint.seed}
        else:
            extra = {"source": item.anchor.source, "quote": item.anchor.quote}
            if item.scenario is None:
                extra["not_modelled"] = item.anchor.not_modelled
        out.append((item, extra))
    return out


def estimate_row(key: str, gpus: str, documented_gib: float, est: Any) -> dict[str, Any]:
    """One table row: the documented figure and the prediction's steps on its busiest device (allocated, reserved,
    + CUDA context and NCCL = predicted), the ratio's inputs and the residual (documented - predicted)."""
    busiest = max(est.per_device.values(), key=lambda d: d["nvidia_smi"])
    outside = (busiest.get("cuda_context", 0) + busiest.get("nccl", 0)) / (1 << 30)
    predicted = round(est.predicted_gib, 2)
    return {"key": key, "gpus": gpus, "documented_gib": documented_gib, "predicted_gib": predicted,
            "allocated_gib": round(busiest["allocated"] / (1 << 30), 2),
            "reserved_gib": round(busiest["reserved"] / (1 << 30), 2), "context_nccl_gib": round(outside, 2),
            "residual_gib": round(documented_gib - predicted, 2), "peak_phase": est.peak_phase,
            "seconds": round(est.seconds, 1)}


def documented_rows(only: list[str] | None, tiny: bool = False, log=print, anchors: bool = False,
                    legacy_stack: bool = False) -> tuple[list[dict], list[dict]]:
    """Simulate each documented footprint (``anchors``: each anchor instead; ``legacy_stack``: each scenario with the
    legacy stack's logits); ``log`` gets a line as each scenario starts and one when it ends (its time and the ETA).
    An anchor without a scenario is a row without a prediction."""
    from ..memory.simulate import simulate

    if anchors:
        from ..memory.anchors import select_anchors

        chosen = select_anchors(only)
    else:
        from ..memory.documented import select_documented

        chosen = select_documented(only)
    items = _table_items(chosen)
    todo = sum(item.scenario is not None for item, _ in items)
    rows, details, durations = [], [], []
    done = 0
    for item, extra in items:
        if item.scenario is None:
            log(f"[-/{todo}] {item.key}: not modelled ({extra['not_modelled']})")
            rows.append({"key": item.key, "gpus": item.gpus, "documented_gib": item.documented_gib,
                         "predicted_gib": None, **extra})
            continue
        done += 1
        scenario = item.scenario.with_(legacy_stack=True) if legacy_stack else item.scenario
        log(f"[{done}/{todo}] {item.key}: tracing {scenario.label()} ...")
        start = _clock()
        est = simulate(scenario, tiny=tiny)
        durations.append(_clock() - start)
        rows.append({**estimate_row(item.key, item.gpus, item.documented_gib, est), **extra})
        details.append(est.to_dict())
        log(f"[{done}/{todo}] {item.key} ... {durations[-1]:.1f} s, {time_to_go(durations, todo - done)} "
            f"(documented {item.documented_gib:.0f}, predicted {est.predicted_gib:.2f} GiB)")
    return rows, details


def _redraw_chart(source: str, out: str | None) -> int:
    from ..memory.report import CHART_EXTRA, chart_from_json

    try:
        path = chart_from_json(source, out)
    except ImportError as err:
        print(f"error: the chart needs matplotlib ({err}): {CHART_EXTRA}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, TypeError) as err:  # unreadable, not JSON, or not a report's
        print(f"error: cannot redraw the chart of {source}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def run_namespace(ns: argparse.Namespace) -> int:
    return run(dataclass_from(MemoryArguments, ns))


def run(args: MemoryArguments) -> int:
    from ..memory.scenario import ScenarioError

    if args.chart_from is not None:
        if args.documented or args.anchors or args.model_type is not None:
            print("error: --chart_from redraws a written report: give it without --documented/--anchors/--model_type",
                  file=sys.stderr)
            return 2
        return _redraw_chart(args.chart_from, args.out)
    if args.documented + args.anchors + (args.model_type is not None) != 1:
        print("error: give one of --documented, --anchors or --model_type X --mode infer|sft", file=sys.stderr)
        return 2
    if args.documented or args.anchors:
        from ..memory.report import text_table, write_report

        start = time.perf_counter()
        try:
            rows, details = documented_rows(args.only, tiny=args.tiny, anchors=args.anchors,
                                            legacy_stack=bool(args.legacy_stack),
                                            log=lambda m: print(m, file=sys.stderr, flush=True))
        except KeyError as err:
            print(f"error: {err.args[0]}", file=sys.stderr)
            return 2
        stem = args.stem or ("anchors" if args.anchors else "documented")
        title = ("measured elsewhere (anchors)" if args.anchors else "documented (seeds)") + (
            ", legacy stack" if args.legacy_stack else "")
        paths = write_report(rows, args.out_dir, details, stem=stem, title=title)
        wall = time.perf_counter() - start
        if args.json:
            print(json.dumps({"rows": rows, "wall_seconds": round(wall, 1)}, indent=2))
        else:
            print(text_table(rows))
            print(f"simulated {len(details)} scenario(s) in {wall:.0f} s; wrote " + ", ".join(str(p) for p in paths))
        return 0
    try:
        from ..memory.simulate import simulate

        scenario = scenario_from_args(args)
        est = simulate(scenario, tiny=args.tiny)
    except (ScenarioError, KeyError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    print(json.dumps(est.to_dict(), indent=2) if args.json else format_estimate(est))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = DataclassArgumentParser(prog="vlmref")
    add_parser(parser.add_subparsers(dest="command"))
    ns = parse_or_report(parser, ["memory", *(sys.argv[1:] if argv is None else argv)])  # as `vlmref memory`
    return 2 if ns is None else run_namespace(ns)
