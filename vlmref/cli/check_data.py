"""``vlmref check-data``: check every row of a dataset for one model type; exit 1 when any row is invalid, 2 when a
dataset cannot be read or has no rows (one ``error:`` line).

::

    $ vlmref check-data --model_type cogvlm-17b-instruct --dataset data/train.jsonl --max_length 2048
    data/train.jsonl:7: field 'images': expected exactly 1 image(s) per conversation (...); found 2
    dataset check: model cogvlm-17b-instruct, every row checked
      data/train.jsonl: 120 rows, 119 valid, 1 invalid

``--max_length`` is ``vlmref sft``'s rule (``vlmref.templates.length``): text tokens only, ms-swift's budget, unless
``--max_length_counts_images true``. From 2000 rows a progress bar (rows checked / total) runs on stderr; it is
closed before the report (stdout) or an ``error:`` line is printed.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass
from typing import Literal

from ..arguments import arg, dataclass_from
from ..errors import DatasetError, VlmrefError
from ..templates.meta import DEFAULT_PROFILE
from .template_args import TemplateProfile, template_profile_arg


@dataclass
class CheckDataArguments:
    """``vlmref check-data``'s flags."""

    model_type: str = arg(help="the model whose rules the rows must follow (vlmref list models)")
    dataset: list[str] = arg(help="files (.json/.jsonl/.csv) or dataset names, name#N")
    max_length: int | None = arg(None, "also check the encoded length (needs the tokenizer); text tokens only, as "
                                       "vlmref sft (ms-swift's budget)")
    max_length_counts_images: bool = arg(False, "as vlmref sft: true = --max_length bounds image positions too")
    truncation_strategy: Literal["delete", "truncation_left"] = arg("delete", "as vlmref sft: delete = a row over "
                                                                              "--max_length is invalid; "
                                                                              "truncation_left = it is kept, cut to "
                                                                              "its last max_length tokens")
    model_id_or_path: str | None = arg(None, "folder with the model's tokenizer files")
    template_profile: TemplateProfile = template_profile_arg()
    check_images: bool = arg(True, "open every image header")
    inference: bool = arg(False, "rows may end with a user turn (no response)")
    # the field is `json` so that the flag stays `--json PATH`
    json: str | None = arg(None, "also write the full report as JSON to this path", metavar="PATH")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    c = sub.add_parser("check-data", help="check a dataset against a model's rules; per-row report, exit 1 if any row is invalid")
    c.add_dataclass(CheckDataArguments)
    c.set_defaults(func=run)
    return c


def _template(args: CheckDataArguments):
    if args.max_length is None and args.template_profile == DEFAULT_PROFILE:
        return None
    from ..models.loader import shared_tokenizer_folder
    from ..models.model_types import MODELS
    from ..templates import get_template
    from ..templates.meta import template_profile_error
    from .tokenizer import load_cli_tokenizer

    if args.model_id_or_path is None and shared_tokenizer_folder(args.model_type) is None:
        raise DatasetError(f"--max_length needs {args.model_type}'s tokenizer to count tokens: pass --model_id_or_path "
                           "(a folder with its tokenizer files) or set VLMREF_TOKENIZERS_DIR")
    counts_images = bool(args.max_length_counts_images)
    problem = template_profile_error(MODELS.get(args.model_type).template, args.template_profile, counts_images)
    if problem:
        raise DatasetError(problem)
    tokenizer, _desc = load_cli_tokenizer(args.model_type, args.model_id_or_path)
    return get_template(MODELS.get(args.model_type).template, tokenizer, max_length=args.max_length,
                        truncation_strategy=args.truncation_strategy, profile=args.template_profile,
                        max_length_counts_images=counts_images)


def run(ns: argparse.Namespace) -> int:
    from ..datasets.loader import load_dataset
    from ..datasets.progress import RowProgress
    from ..utils import atomic_write_bytes

    args = dataclass_from(CheckDataArguments, ns)

    try:
        template = _template(args)
        # the length is checked as vlmref sft checks it (one --max_length rule: vlmref.templates.length)
        rows_template = copy.copy(template) if template is not None and template.max_length is not None else template
        if rows_template is not template:
            rows_template.max_length = None
        with RowProgress("Checking rows") as bar:  # stderr, from PROGRESS_MIN_ROWS rows; closed before any output
            loaded = load_dataset(args.dataset, args.model_type, check_dataset_strategy="discard",
                                  template=rows_template, check_images=args.check_images,
                                  require_response=not args.inference, progress=bar.advance)
        if rows_template is not template:
            from ..llm.sft_precheck import check_lengths

            loaded.train = check_lengths(loaded.train, template, "discard", loaded.report)
    except VlmrefError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = loaded.report
    report.check_only = True
    for issue in sorted(report.issues, key=lambda i: i.sort_key):
        print(issue.message)
    print(report.summary(max_issues=0))
    if args.json:
        atomic_write_bytes(args.json, json.dumps(report.to_dict(), ensure_ascii=False, indent=1).encode())
        print(f"report written to {args.json}")
    return 1 if report.issues else 0
