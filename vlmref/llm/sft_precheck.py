"""What ``vlmref sft`` checks before the model loads, and the length check after it.

Before the model (each failure is one ``error:`` line, exit 2)::

    check_extras('lora', None)        # error: vlmref sft needs peft (for --sft_type lora), not installed: pip
                                      #        install 'vlmref[train]'
    check_local_paths(args)           # error: --model_id_or_path '/nonexistent' is not a folder ...
    data = precheck_rows(args, log)   # every row: format, fields, model rules, markup, image files and headers
    resolve_model_source(args)        # a hub id -> its snapshot; offline or unknown -> error with the fix

``precheck_rows`` checks rows in file order (with a progress bar from ``PROGRESS_MIN_ROWS`` rows), whatever
``--check_dataset_strategy``: ``error`` stops at the first bad row; ``none`` (ms-swift's default) lists every bad row
and stops before the model loads; ``warning`` lists them and keeps them; ``discard`` drops them, each counted in the
report. Only the tokenized length needs the tokenizer: ``check_lengths`` runs it after the model loads (``error``,
``warning``, ``discard``); under ``none`` a row is measured when first encoded (``encode_row``). Both state the one
``--max_length`` rule of ``vlmref.templates.length``, the same as ``vlmref check-data``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..datasets.progress import PROGRESS_MIN_ROWS, RowProgress  # noqa: F401 - PROGRESS_MIN_ROWS: re-exported
from ..errors import DatasetRowError, SequenceTooLongError, VlmrefError
from .sft_args import SftArgumentError

TRAIN_EXTRA = "pip install 'vlmref[train]'"


class DatasetPrecheckError(VlmrefError):
    """Several rows failed the pre-check under ``--check_dataset_strategy none``; each was printed before."""


@dataclass
class PrecheckedData:
    train: list[Any]
    val: list[Any]
    report: Any  # DatasetReport


# ---- packages and paths ---------------------------------------------------------------------------------------------
def _missing(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is None  # None: import blocked (how tests simulate an absent package)
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def check_extras(sft_type: str, deepspeed: str | None) -> None:
    """Refuse to start when a package the run will import is absent (before the model loads, not after)."""
    needed = {"torch": "the models", "transformers": "the models", "safetensors": "the checkpoints"}
    if sft_type == "lora":
        needed["peft"] = "--sft_type lora"
    if deepspeed is not None:
        needed["deepspeed"] = f"--deepspeed {deepspeed}"
    missing = [(m, why) for m, why in needed.items() if _missing(m)]
    if missing:
        names = ", ".join(f"{m} (for {why})" for m, why in missing)
        raise SftArgumentError(f"vlmref sft needs {names}, not installed: {TRAIN_EXTRA}")


def _looks_local(value: str) -> bool:
    return os.path.isabs(value) or value.startswith((".", "~")) or os.path.exists(value) or value.count("/") > 1


def check_local_paths(args: Any) -> None:
    """``--model_id_or_path`` / ``--tokenizer_id_or_path``: a folder (with config.json for the model) or a hub id."""
    for flag, need_config in (("model_id_or_path", True), ("tokenizer_id_or_path", False)):
        value = getattr(args, flag, None)
        if value is None:
            continue
        value = str(value)
        if os.path.isdir(value):
            if need_config and not os.path.isfile(os.path.join(value, "config.json")):
                raise SftArgumentError(f"--{flag} {value!r} has no config.json: expected a checkpoint folder "
                                       "(config.json, *.safetensors, tokenizer files)")
            continue
        if _looks_local(value):
            raise SftArgumentError(f"--{flag} {value!r} is not a folder: expected a local checkpoint folder or a hub "
                                   "id such as 'Qwen/Qwen-VL-Chat'")


def resolve_model_source(args: Any, log: Callable[[str], None]) -> None:
    """Resolve a hub id (or the registry's default) to its local snapshot; unreachable -> one clean error."""
    from ..models.loader import resolve_model_dir, resolve_tokenizer_dir

    try:
        folder = resolve_model_dir(args.model_type, args.model_id_or_path)
        if args.tokenizer_id_or_path is not None:
            args.tokenizer_id_or_path = str(resolve_tokenizer_dir(args.model_type, args.tokenizer_id_or_path))
    except (OSError, ImportError) as err:  # offline, unknown id, no modelscope: the loader's message has the fix
        raise SftArgumentError(" ".join(str(err).split())) from err
    if str(folder) != str(args.model_id_or_path):
        log(f"model_id_or_path: {args.model_id_or_path or 'the registry default'} -> {folder}")
    args.model_id_or_path = str(folder)
    check_local_paths(args)


# ---- rows -----------------------------------------------------------------------------------------------------------
def _position(source: str, line: int | None, index: int | None, rank: dict[str, int]) -> tuple[int, int]:
    return rank.get(source, len(rank)), line if line is not None else (index or 0)


def file_order(samples: Iterable[Any], report: Any) -> list[Any]:
    """``samples`` sorted as they appear in the files (sources in reading order, then line or row index)."""
    rank = {source: i for i, source in enumerate(report.sources)}
    return sorted(samples, key=lambda s: _position(s.origin.source, s.origin.line, s.origin.index, rank) if s.origin
                  else (len(rank), 0))


def _apply(samples: Sequence[Any], check: Callable[[Any], None], strategy: str, report: Any, *, counted: str,
           desc: str, progress: bool, quiet: bool) -> list[Any]:
    """Run ``check`` on every sample in file order under ``strategy``; returns the samples that stay.

    ``counted``: how the report counts the samples so far (``unchecked`` or ``valid``); each is re-counted as valid or
    invalid. ``none`` raises after the pass when any row failed; ``error`` at the first failure.
    """
    bad: dict[int, DatasetRowError | None] = {}
    failed: list[DatasetRowError] = []
    bar = RowProgress(desc, len(samples), enabled=progress and not quiet)
    try:
        for s in file_order(samples, report):
            counts = report.counts(s.origin.source if s.origin else "<samples>")
            setattr(counts, counted, getattr(counts, counted) - 1)
            if id(s) not in bad:
                try:
                    check(s)
                    bad[id(s)] = None
                except DatasetRowError as e:
                    bad[id(s)] = e
            err = bad[id(s)]
            bar.update()
            if err is None:
                counts.valid += 1
                continue
            if strategy == "error":
                raise err
            report.add_issue(err, discarded=strategy == "discard")
            failed.append(err)
            if strategy == "warning" and not quiet:
                bar.say(f"warning: {err} (kept: --check_dataset_strategy warning)")
    finally:
        bar.close()
    if failed and strategy == "none":
        if len(failed) == 1:
            raise failed[0]
        if not quiet:
            for err in failed:
                print(str(err), file=sys.stderr)
        reasons = ", ".join(f"{r} {n}" for r, n in report.by_reason.most_common())
        raise DatasetPrecheckError(
            f"{len(failed)} rows are invalid ({reasons}; each listed above), found before loading the model: fix "
            "them, or pass --check_dataset_strategy discard to drop them (each counted) or warning to keep them")
    if strategy == "discard":
        return [s for s in samples if bad.get(id(s)) is None]
    return list(samples)


# the loader's strategy for each --check_dataset_strategy: `none` and `warning` load as ms-swift does (the first
# unparseable row stops; a near-miss images field is a warning); `error` and `discard` collect every load-stage problem
_LOAD_STRATEGY = {"none": "none", "warning": "none", "error": "discard", "discard": "discard"}


def _load(args: Any, strategy: str) -> tuple[list[Any], list[Any], Any]:
    from ..datasets.loader import load_dataset

    common = {"check_dataset_strategy": strategy, "dataset_seed": args.dataset_seed}
    loaded = load_dataset(args.dataset, args.model_type, dataset_test_ratio=args.dataset_test_ratio, **common)
    train, val, report = loaded.train, loaded.val, loaded.report
    if args.val_dataset:
        extra = load_dataset(args.val_dataset, args.model_type, dataset_test_ratio=1.0, **common)
        report.sources.update(extra.report.sources)
        report.issues += extra.report.issues
        report.warnings += getattr(extra.report, "warnings", [])
        val = extra.val
    return train, val, report


def precheck_rows(args: Any, log: Callable[[str], None], *, quiet: bool = False) -> PrecheckedData:
    """Load ``--dataset`` / ``--val_dataset`` and check every row's cheap properties (see the module docstring)."""
    from ..datasets.rules import RowChecker

    strategy = args.check_dataset_strategy
    load_strategy = _LOAD_STRATEGY[strategy]
    train, val, report = _load(args, load_strategy)
    load_issues = list(report.issues)
    report.strategy = strategy
    checker = RowChecker(args.model_type, check_images=True)
    counted = "valid" if load_strategy == "discard" else "unchecked"
    run = {"counted": counted, "desc": "Checking rows", "progress": not getattr(args, "disable_tqdm", False),
           "quiet": quiet}
    try:
        kept = _apply([*train, *val], checker.check, strategy, report, **run)
    except DatasetRowError as err:
        if strategy != "error":
            raise
        _raise_first(args, err, load_issues, report)
    if strategy == "error" and load_issues:
        _raise_first(args, None, load_issues, report)
    ids = {id(s) for s in kept}
    train, val = [s for s in train if id(s) in ids], [s for s in val if id(s) in ids]
    report.splits = {"train": len(train), "val": len(val)}
    return PrecheckedData(train, val, report)


def _raise_first(args: Any, err: DatasetRowError | None, load_issues: list[Any], report: Any) -> None:
    """``--check_dataset_strategy error``: raise the first bad row in file order, from the load or from the checks."""
    rank = {source: i for i, source in enumerate(report.sources)}
    first = min(load_issues, key=lambda i: _position(i.source, i.line, i.row, rank), default=None)
    if err is not None and (first is None or _position(err.source, err.line, getattr(err, "row", None), rank)
                            <= _position(first.source, first.line, first.row, rank)):
        raise err
    _load(args, "error")  # the loader raises the first load-stage problem (parsing is in file order)
    raise DatasetPrecheckError(first.message)  # pragma: no cover - the loader raised it above


# ---- length ---------------------------------------------------------------------------------------------------------
def encode_row(template: Any, sample: Any, checker: Any = None) -> dict[str, Any]:
    """``encode_sample`` with a too-long row reported under the one ``--max_length`` rule (``templates.length``)."""
    from ..datasets.encode import encode_sample
    from ..templates.length import too_long_row_error

    try:
        return encode_sample(template, sample, checker)
    except DatasetRowError as err:
        cause = err.__cause__
        if err.reason == "too_long" and isinstance(cause, SequenceTooLongError):
            raise too_long_row_error(err, cause, template.max_length_counts_images) from None
        raise


def check_lengths(samples: Sequence[Any], template: Any, strategy: str, report: Any, *, progress: bool = True,
                  quiet: bool = False) -> list[Any]:
    """The tokenized-length check of every row (file order) under ``strategy``; the samples that stay (a row the
    template refuses, e.g. under ``--template_profile swift-2.2.0``, is reported here too).

    For ``none`` nothing is checked here (the row is measured when first encoded). The rows must be counted as valid
    in ``report`` (after ``precheck_rows``, or a ``discard`` load); a too-long row is re-counted as invalid.
    """
    from ..templates.meta import DEFAULT_PROFILE

    # without max_length only a non-official profile's own refusals are left to find (swift_unsupported)
    if strategy == "none" or not samples or (template.max_length is None and template.profile == DEFAULT_PROFILE):
        return list(samples)
    return _apply(samples, lambda s: encode_row(template, s), strategy, report, counted="valid",
                  desc="Checking lengths", progress=progress, quiet=quiet)


def check_split_lengths(data: PrecheckedData, template: Any, args: Any, *, quiet: bool = False) -> PrecheckedData:
    """``check_lengths`` over the train and validation rows together (file order); the report's split updated."""
    rows = [*data.train, *data.val]
    kept = {id(s) for s in check_lengths(rows, template, args.check_dataset_strategy, data.report,
                                         progress=not getattr(args, "disable_tqdm", False), quiet=quiet)}
    train = [s for s in data.train if id(s) in kept]
    val = [s for s in data.val if id(s) in kept]
    data.report.splits = {"train": len(train), "val": len(val)}
    return PrecheckedData(train, val, data.report)
