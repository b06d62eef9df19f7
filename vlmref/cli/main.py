"""``vlmref`` entry point: ``sft``, ``infer``, ``export``, ``list``, ``render``, ``check-data``, ``model-info``,
``create-tiny``, ``memory``, ``bench``, ``demo``. Flags keep ms-swift 2.2.0's names."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Literal

from .. import __version__
from ..arguments import arg, dataclass_from
from .template_args import TemplateProfile, template_profile_arg


@dataclass
class RenderArguments:
    """``vlmref render``'s flags."""

    model_type: str = arg(help="the model whose template renders the sample (vlmref list models)")
    query: str = arg(help="the last user turn")
    response: str | None = arg(None, "the answer (its tokens are the labels); None: an inference prompt")
    history: str | None = arg(None, 'JSON list of [query, response] pairs, e.g. \'[["hi", "hello"]]\'')
    system: str | None = arg(None, "'' turns the system prompt off; None: the template's default")
    images: list[str] | None = arg(None, "image paths (their size sets LLaVA-NeXT/IXC-2.5 counts)", nargs="*")
    model_id_or_path: str | None = arg(None, "folder with the tokenizer files; None: ../shared/tokenizers, else the "
                                             "byte-level stand-in")
    max_length: int | None = arg(None, "prompt limit in tokens; None: no limit")
    truncation_strategy: Literal["delete", "truncation_left"] = arg("delete", "a sample over --max_length: delete = "
                                                                              "refuse it; truncation_left = keep its "
                                                                              "last max_length tokens")
    template_profile: TemplateProfile = template_profile_arg()


@dataclass
class DemoArguments:
    """``vlmref demo``'s flags."""

    templates: bool = arg(False, "render every model's template on the bundled sample")
    model_type: str | None = arg(None, "the tiny model of the workflow; None: llava1d6-mistral-7b-instruct")
    out: str = arg("demo_out", "where the tiny model, checkpoints and merged model go")
    max_steps: int = arg(12, "sft optimizer steps")


def _cmd_list(args: argparse.Namespace) -> int:
    from ..models.model_types import MODELS
    from ..templates import TEMPLATES
    from ..templates.meta import DEFAULT_PROFILE, SWIFT_2_2_0, SWIFT_TEMPLATES

    if args.what == "templates":
        print(f"profiles: official (default), {SWIFT_2_2_0} (--template_profile {SWIFT_2_2_0}: ms-swift 2.2.0's exact ids)")
        for name in TEMPLATES.names():
            meta = TEMPLATES.get(name)
            users = [m for m in MODELS.names() if MODELS.get(m).template == name]
            aliases = f" (alias: {', '.join(meta.aliases)})" if meta.aliases else ""
            print(f"{name}{aliases}\n  media: {meta.media}, tags: {meta.infer_media_type}, system: "
                  f"{'yes' if meta.supports_system else 'no'}, default system: {meta.default_system!r}\n"
                  f"  models: {', '.join(users) or '-'}\n"
                  f"  {DEFAULT_PROFILE}: deviations from ms-swift 2.2.0: {len(meta.deviations)}")
            for d in meta.deviations:
                print(f"    - {d}")
            if name not in SWIFT_TEMPLATES:
                print(f"  {SWIFT_2_2_0}: not in ms-swift 2.2.0")
                continue
            swift = SWIFT_TEMPLATES.get(name)
            print(f"  {SWIFT_2_2_0}: reproduces ms-swift 2.2.0 where official deviates: "
                  f"{', '.join(q.id for q in swift.quirks)}")
        return 0
    for name in MODELS.names():
        m = MODELS.get(name)
        aliases = f" (ms-swift 2.2.0: {', '.join(m.aliases)})" if m.aliases else ""
        print(f"{name}{aliases}")
        print(f"  ModelScope: {m.ms_model_id}   HF: {m.hf_model_id}")
        print(f"  template: {m.template}   LoRA DEFAULT: {', '.join(m.lora_target_modules)}   "
              f"gradient_checkpointing: {m.gradient_checkpointing}")
        print(f"  merge-lora: {'yes' if m.support_merge_lora else 'no'}{' (' + m.merge_lora_note + ')' if m.merge_lora_note else ''}")
        print(f"  dataset rules: {m.rules.note}")
        if m.upstream_requires:
            print(f"  ms-swift 2.2.0 requires: {', '.join(m.upstream_requires)} (vlmref: none beyond its own pins)")
        for f in m.footprints:
            print(f"  documented: {f.mode:5s} {f.gpus} x {f.gb_per_gpu:g} GB on {f.gpu_kind} ({f.launch}; {f.seed})")
    return 0


def _cmd_render(ns: argparse.Namespace) -> int:
    from ..errors import VlmrefError
    from .render import render_report
    from .tokenizer import load_cli_tokenizer

    args = dataclass_from(RenderArguments, ns)
    history = json.loads(args.history) if args.history else []
    example = {"query": args.query, "response": args.response, "history": history, "system": args.system,
               "images": args.images or []}
    tokenizer, desc = load_cli_tokenizer(args.model_type, args.model_id_or_path)
    try:
        print(render_report(args.model_type, example, tokenizer, desc, max_length=args.max_length,
                            truncation_strategy=args.truncation_strategy, profile=args.template_profile))
    except VlmrefError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _cmd_demo(ns: argparse.Namespace) -> int:
    args = dataclass_from(DemoArguments, ns)
    if args.templates:
        from .render import run_demo

        return run_demo()
    from .workflow_demo import run_workflow_demo

    return run_workflow_demo(args.out, model_type=args.model_type or "llava1d6-mistral-7b-instruct",
                             max_steps=args.max_steps)


def build_parser() -> argparse.ArgumentParser:
    from ..arguments import DataclassArgumentParser
    from ..flags import add_bool_flag

    # every sub-command's parser is a DataclassArgumentParser: its flags are a dataclass's fields (vlmref.arguments)
    p = DataclassArgumentParser(prog="vlmref", description="Reference multimodal fine-tuning workflow (ms-swift 2.x).")
    p.add_argument("--version", action="version", version=f"vlmref {__version__}")
    add_bool_flag(p, "--debug", argparse.SUPPRESS, "show the traceback of an error instead of one 'error:' line "
                  "(anywhere on the command line; or VLMREF_DEBUG=1)", shown=False)
    sub = p.add_subparsers(dest="command", required=True)

    # `list` has no flags, only the positional `what` (a dataclass field cannot be positional): a plain add_argument
    ls = sub.add_parser("list", help="list model types or templates")
    ls.add_argument("what", choices=["models", "templates"])
    ls.set_defaults(func=_cmd_list)

    r = sub.add_parser("render", help="print a sample's rendered prompt, label mask and ids")
    r.add_dataclass(RenderArguments)
    r.set_defaults(func=_cmd_render)

    from . import bench, check_data, conform, export, infer, memory, sft
    from .models import add_parsers as add_model_parsers

    sft.add_parser(sub)
    infer.add_parser(sub)
    export.add_parser(sub)
    check_data.add_parser(sub)
    add_model_parsers(sub)
    memory.add_parser(sub)
    bench.add_parser(sub)
    conform.add_parser(sub)

    d = sub.add_parser("demo", help="tiny-model LoRA sft -> merge -> infer on the bundled sample (--templates: render)")
    d.add_dataclass(DemoArguments)
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    from ..arguments import parse_or_report
    from ..models.model_types import MODELS
    from .pipes import flush_stdout, stdout_closed
    from .user_errors import debug_flag, report_error

    with debug_flag(list(sys.argv[1:] if argv is None else argv)) as argv:
        args = parse_or_report(build_parser(), argv)
        if args is None:
            return 2
        if isinstance(getattr(args, "model_type", None), str) and args.model_type not in MODELS:
            print(f"error: unknown model_type {args.model_type!r}; known: {', '.join(MODELS.names())}",
                  file=sys.stderr)
            return 2
        try:
            code = int(args.func(args) or 0)
            flush_stdout()
            return code
        except BrokenPipeError:  # `vlmref check-data ... | head`: the reader left; stop quietly (cli/pipes.py)
            return stdout_closed()
        except Exception as err:  # bad input, a missing package, path or hub id: one line, exit 2 (--debug: traceback)
            return report_error(err)


if __name__ == "__main__":
    raise SystemExit(main())
