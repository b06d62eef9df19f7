"""`vlmref sft --help` describes every flag; boolean flags take one style in every command; `memory`/`bench` name
DeepSpeed configs as `sft` does (issue 13 item 19)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Literal

import pytest

from vlmref.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def _vlmref(*argv: str) -> subprocess.CompletedProcess:
    """The real command (``python -m vlmref`` is the console script's ``main``), 200 columns wide."""
    return subprocess.run([sys.executable, "-m", "vlmref", *argv], capture_output=True, text=True, timeout=600,
                          cwd=REPO, env={**os.environ, "COLUMNS": "200"})


def _help_blocks(text: str) -> dict[str, str]:
    """``--flag`` -> its help entry (option line and wrapped description, whitespace collapsed)."""
    blocks: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^  (?:-\w, )?(--[a-z0-9_]+)", line)
        if m:
            current = m.group(1)
            blocks[current] = line
        elif current and line.startswith("      "):
            blocks[current] += " " + line
        else:
            current = None
    return {k: " ".join(v.split()) for k, v in blocks.items()}


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(value) if value else "[]"
    return str(value)


# ---- vlmref sft --help ----------------------------------------------------------------------------------------------
def test_sft_help_describes_every_flag_with_choices_and_default() -> None:
    from vlmref.llm.sft_args import IGNORED_FLAGS, SftArguments

    done = _vlmref("sft", "--help")
    assert done.returncode == 0, done.stderr
    options, _, tail = done.stdout.partition("ms-swift 2.2.0 flags accepted and ignored:")
    blocks = _help_blocks(options)
    hints = typing.get_type_hints(SftArguments)
    for f in dataclasses.fields(SftArguments):
        block = blocks[f"--{f.name}"]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert " ".join(f.metadata["help"].split()) in block, (f.name, block)
        assert block.endswith(f"(default: {_shown(default)})"), (f.name, block)
        kinds = [k for k in typing.get_args(hints[f.name]) if k is not type(None)] or [hints[f.name]]
        if typing.get_origin(kinds[0]) is Literal:
            choices = list(typing.get_args(kinds[0])) + (["None"] if type(None) in typing.get_args(hints[f.name])
                                                         else [])
            assert block.startswith(f"--{f.name} {{{','.join(choices)}}}"), block
        if kinds[0] is bool:
            assert block.startswith(f"--{f.name} [{{true,false}}]"), block
    for flag, choices in [("sft_type", "{lora,full}"), ("template_profile", "{official,swift-2.2.0}"),
                          ("check_dataset_strategy", "{none,discard,error,warning}"),
                          ("deepspeed", "{default-zero2,default-zero3,zero3-offload,PATH.json}"),
                          ("dtype", "{bf16,fp16,fp32,AUTO}"),
                          ("truncation_strategy", "{delete,truncation_left,ignore}")]:
        assert blocks[f"--{flag}"].startswith(f"--{flag} {choices} "), blocks[f"--{flag}"]
    for name, reason in IGNORED_FLAGS.items():  # listed once, at the end, with the reason
        assert f"--{name}" not in options and done.stdout.count(f"--{name} ") == 1
        assert re.search(rf"^  --{name} +{re.escape(reason)}$", tail, re.M), name
    assert "--packing" in tail and "(refused)" in tail
    assert done.stdout.startswith("usage: vlmref sft [args.json|args.yaml] --model_type MODEL_TYPE --dataset DATASET")


def test_every_sft_field_has_one_line_of_help() -> None:
    from vlmref.llm.sft_args import DEEPSPEED_NAMES, SFT_TYPES, SftArguments
    from vlmref.templates.meta import PROFILES

    fields = {f.name: f for f in dataclasses.fields(SftArguments)}
    assert all(f.metadata.get("help", "").strip() and "\n" not in f.metadata["help"] for f in fields.values())
    assert set(SftArguments.ARGUMENT_GROUPS) <= set(fields)
    # the str fields resolve() checks show their choices (so that a tuner ms-swift has gets its own message there)
    for name, choices in [("template_profile", PROFILES), ("deepspeed", (*DEEPSPEED_NAMES, "PATH.json")),
                          ("sft_type", SFT_TYPES)]:
        assert fields[name].metadata["metavar"] == "{" + ",".join(choices) + "}"


# ---- boolean flags: one style ---------------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _is_boolean(action: argparse.Action) -> bool:
    from vlmref.flags import BoolAction, parse_bool, parse_optional_bool

    return (isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, BoolAction))
            or action.type in (parse_bool, parse_optional_bool)
            or sorted(map(str, action.choices or [])) == ["false", "true"])


# the arguments each command needs besides the boolean flag under test
REQUIRED = {
    "sft": [], "infer": [], "export": [], "check-data": ["--model_type", "qwen-vl-chat", "--dataset", "d.jsonl"],
    "model-info": ["--model_type", "qwen-vl-chat"], "create-tiny": ["--model_type", "qwen-vl-chat", "--out", "o"],
    "memory": [], "bench": [], "demo": [], "conform": ["--adapter", "m:f"],
}


def test_every_boolean_flag_takes_true_false_and_bare() -> None:
    """Every boolean flag of every command is the shared helper's: ``--flag``, ``--flag true|false|1|0|yes|no``,
    ``--flag=false``; its help shows ``{true,false}`` and the default."""
    from vlmref.flags import BoolAction

    parsers = _subparsers(build_parser())
    with_bools = {}
    for command, parser in parsers.items():
        flags = [a for a in parser._actions if _is_boolean(a)]
        if flags:
            with_bools[command] = flags
    assert sorted(with_bools) == sorted(REQUIRED)
    for command, flags in with_bools.items():
        for action in flags:
            flag = action.option_strings[0]
            assert isinstance(action, BoolAction), (command, flag)
            assert action.metavar == "{true,false}" and "(default: " in action.help, (command, flag)
            for argv, expected in [([flag], True), ([flag, "true"], True), ([flag, "false"], False),
                                   ([flag, "1"], True), ([flag, "no"], False), ([f"{flag}=false"], False),
                                   ([flag, "Yes"], True)]:
                ns = build_parser().parse_args([command, *REQUIRED[command], *argv])
                assert getattr(ns, action.dest) is expected, (command, argv)


def test_standalone_parsers_take_the_same_boolean_style() -> None:
    """``python -m vlmref.cli.infer`` / ``.bench`` / ``.export`` and ``vlmref.llm.sft_args`` parse booleans alike."""
    from vlmref.cli import infer
    from vlmref.llm.sft_args import parse_sft_args

    assert infer.build_parser().parse_args(["--stream"]).stream is True
    assert infer.build_parser().parse_args(["--stream", "false", "--verbose"]).verbose is True
    args = parse_sft_args(["--model_type", "qwen-vl-chat", "--disable_tqdm", "--gradient_checkpointing", "None",
                           "--save_only_model", "yes"])
    assert (args.disable_tqdm, args.gradient_checkpointing, args.save_only_model) == (True, None, True)


def test_bare_flag_leaves_the_positional(tmp_path: Path, capsys) -> None:
    """``vlmref bench --compare_documented RESULT.json`` (README): a bare flag before the positional."""
    ns = build_parser().parse_args(["bench", "--compare_documented", "r.json"])
    assert (ns.compare_documented, ns.result) == (True, "r.json")
    ns = build_parser().parse_args(["bench", "--compare", "b.json", "--allow_missing", "r.json"])
    assert (ns.allow_missing, ns.result) == (True, "r.json")
    ns = build_parser().parse_args(["bench", "--compare_documented", "false", "r.json"])
    assert (ns.compare_documented, ns.result) == (False, "r.json")


def test_boolean_flags_in_real_commands(tmp_path: Path, capsys) -> None:
    """check-data's ``--check_images`` (was true|false only) and ``--inference`` (was bare only) take every form."""
    data = tmp_path / "d.jsonl"
    (tmp_path / "x.png").write_bytes(b"not a png")
    data.write_text(json.dumps({"query": f"<img>{tmp_path / 'x.png'}</img> hi", "response": "b"}) + "\n")
    base = ["check-data", "--model_type", "qwen-vl-chat", "--dataset", str(data)]
    for argv, code in [([], 1), (["--check_images"], 1), (["--check_images", "true"], 1),
                       (["--check_images", "false"], 0), (["--check_images=0", "--inference"], 0),
                       (["--check_images", "no", "--inference", "false"], 0)]:
        assert main([*base, *argv]) == code, argv
        assert ("image_corrupt 1" in capsys.readouterr().out) is (code == 1)
    done = _vlmref("memory", "--json", "true", "--tiny", "false")
    assert done.returncode == 2
    assert done.stderr == "error: give one of --documented, --anchors or --model_type X --mode infer|sft\n"


def test_debug_flag_takes_the_boolean_style(capsys) -> None:
    from vlmref.cli.user_errors import split_debug

    assert split_debug(["--debug", "list", "models"]) == (True, ["list", "models"])
    assert split_debug(["list", "--debug", "false", "models"]) == (False, ["list", "models"])
    assert split_debug(["--debug=1", "list"]) == (True, ["list"])
    assert split_debug(["list", "models"]) == (None, ["list", "models"])
    assert main(["--debug", "true", "list", "models"]) == 0
    assert "qwen-vl-chat" in capsys.readouterr().out


# ---- memory / bench --deepspeed: sft's names ------------------------------------------------------------------------
def test_memory_takes_sfts_deepspeed_names() -> None:
    done = _vlmref("memory", "--model_type", "qwen-vl-chat", "--mode", "sft", "--sft_type", "full", "--deepspeed",
                   "default-zero3", "--world_size", "2", "--text_tokens", "16", "--tiny", "--json")
    assert done.returncode == 0, done.stderr
    est = json.loads(done.stdout)
    assert est["scenario"]["deepspeed"] == "zero3" and sorted(est["per_device_gib"]) == ["rank0/cuda:0", "rank1/cuda:0"]
    assert any(n.startswith("ZeRO-3:") for n in est["notes"])
    help_text = " ".join(_vlmref("memory", "--help").stdout.split())
    assert "--deepspeed {default-zero2,default-zero3,zero3-offload,PATH.json}" in help_text
    assert "--gradient_checkpointing [{true,false}]" in help_text


@pytest.mark.parametrize(("value", "message"), [
    ("zero2", "--deepspeed 'zero2': not one of default-zero2, default-zero3, zero3-offload and not a JSON file "
              "(did you mean default-zero2?)"),
    ("bogus", "--deepspeed 'bogus': not one of default-zero2, default-zero3, zero3-offload and not a JSON file"),
    ("zero3-offload", "--deepspeed zero3-offload: offload_param to cpu is not modelled"),
])
@pytest.mark.parametrize("command", ["memory", "bench"])
def test_bad_deepspeed_is_one_error_line(command: str, value: str, message: str) -> None:
    done = _vlmref(command, "--model_type", "qwen-vl-chat", "--mode", "sft", "--deepspeed", value, "--device" if
                   command == "bench" else "--tiny", "cpu" if command == "bench" else "true")
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {message}"), line


def _ds_file(tmp_path: Path, zero: dict) -> str:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"train_batch_size": "auto", "zero_optimization": zero}))
    return str(path)


def test_deepspeed_json_file_gives_the_stage(tmp_path: Path) -> None:
    from vlmref.cli.scenario_args import scenario_from_args, zero_stage
    from vlmref.memory.scenario import ScenarioError

    assert zero_stage("default-zero2") == "zero2" and zero_stage("default-zero3") == "zero3"
    assert zero_stage(_ds_file(tmp_path, {"stage": 2, "offload_optimizer": {"device": "none"}})) == "zero2"
    ns = build_parser().parse_args(["memory", "--model_type", "qwen-vl-chat", "--mode", "sft", "--deepspeed",
                                    _ds_file(tmp_path, {"stage": 3}), "--world_size", "4"])
    assert scenario_from_args(ns).deepspeed == "zero3"
    for zero, message in [({"stage": 1}, "zero_optimization.stage is 1"), ({}, "zero_optimization.stage is None"),
                          ({"stage": 2, "offload_optimizer": {"device": "cpu"}}, "offload_optimizer to cpu is not "
                                                                                  "modelled"),
                          ({"stage": 3, "offload_param": {"device": "nvme"}}, "offload_param to nvme is not modelled")]:
        with pytest.raises(ScenarioError, match=re.escape(message)):
            zero_stage(_ds_file(tmp_path, zero))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ScenarioError, match="cannot read it as a DeepSpeed JSON config"):
        zero_stage(str(tmp_path / "bad.json"))


def test_bench_torchrun_hint_uses_sfts_deepspeed_name() -> None:
    from vlmref.bench.gpu import scenario_argv
    from vlmref.memory.scenario import MemoryScenario

    argv = scenario_argv(MemoryScenario("qwen-vl-chat", "sft", sft_type="full", deepspeed="zero2", world_size=4))
    assert argv[argv.index("--deepspeed") + 1] == "default-zero2"
