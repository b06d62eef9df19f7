"""``vlmref`` entry point: ``sft``, ``infer``, ``export``, ``list``, ``render``, ``check-data``, ``model-info``,
``create-tiny``, ``memory``, ``bench``, ``demo``. Flags keep ms-swift 2.2.0's names."""

from __future__ import annotations

import argparse
import json
import sys

from .. import __version__
from .template_args import add_template_profile_argument


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


def _cmd_render(args: argparse.Namespace) -> int:
    from ..errors import VlmrefError
    from .render import render_report
    from .tokenizer import load_cli_tokenizer

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


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.templates:
        from .render import run_demo

        return run_demo()
    from .workflow_demo import run_workflow_demo

    return run_workflow_demo(args.out, model_type=args.model_type or "llava1d6-mistral-7b-instruct",
                             max_steps=args.max_steps)


def build_parser() -> argparse.ArgumentParser:
    from ..flags import FlagParser, add_bool_flag

    # FlagParser: every sub-command's boolean flags take --flag, --flag true|false (vlmref.flags)
    p = FlagParser(prog="vlmref", description="Reference multimodal fine-tuning workflow (ms-swift 2.x).")
    p.add_argument("--version", action="version", version=f"vlmref {__version__}")
    add_bool_flag(p, "--debug", argparse.SUPPRESS, "show the traceback of an error instead of one 'error:' line "
                  "(anywhere on the command line; or VLMREF_DEBUG=1)", shown=False)
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list model types or templates")
    ls.add_argument("what", choices=["models", "templates"])
    ls.set_defaults(func=_cmd_list)

    r = sub.add_parser("render", help="print a sample's rendered prompt, label mask and ids")
    r.add_argument("--model_type", required=True)
    r.add_argument("--query", required=True)
    r.add_argument("--response", default=None)
    r.add_argument("--history", default=None, help='JSON list of [query, response] pairs, e.g. \'[["hi", "hello"]]\'')
    r.add_argument("--system", default=None, help="'' turns the system prompt off; omitted = template default")
    r.add_argument("--images", nargs="*", default=None, help="image paths (their size sets LLaVA-NeXT/IXC-2.5 counts)")
    r.add_argument("--model_id_or_path", default=None, help="folder with the tokenizer files")
    r.add_argument("--max_length", type=int, default=None)
    r.add_argument("--truncation_strategy", default="delete", choices=["delete", "truncation_left"])
    add_template_profile_argument(r)
    r.set_defaults(func=_cmd_render)

    from . import bench, check_data, export, infer, memory, sft
    from .models import add_parsers as add_model_parsers

    sft.add_parser(sub)
    infer.add_parser(sub)
    export.add_parser(sub)
    check_data.add_parser(sub)
    add_model_parsers(sub)
    memory.add_parser(sub)
    bench.add_parser(sub)

    d = sub.add_parser("demo", help="tiny-model LoRA sft -> merge -> infer on the bundled sample (--templates: render)")
    add_bool_flag(d, "--templates", False, "render every model's template on the bundled sample")
    d.add_argument("--model_type", default=None, help="default llava1d6-mistral-7b-instruct")
    d.add_argument("--out", default="demo_out", help="where the tiny model, checkpoints and merged model go")
    d.add_argument("--max_steps", type=int, default=12)
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    from ..models.model_types import MODELS
    from .pipes import flush_stdout, stdout_closed
    from .user_errors import debug_flag, report_error

    with debug_flag(list(sys.argv[1:] if argv is None else argv)) as argv:
        if argv[:1] == ["sft"] and argv[1:2] and argv[1].endswith(".json") and not argv[1].startswith("-"):
            from . import sft

            return sft.main(argv[1:])  # `vlmref sft args.json [flags]`: ms-swift's JSON arguments file
        args = build_parser().parse_args(argv)
        if getattr(args, "model_type", None) is not None and args.model_type not in MODELS:
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
