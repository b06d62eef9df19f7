"""``infer``, ``export``, ``check-data`` (and every other command converted to ``vlmref.arguments``): an arguments file,
``--args_file x.yaml`` or a leading ``x.json``, gives the same values as the flags; a flag on the command line
overrides the file; every command's help describes every one of its dataclass's flags."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path

import pytest
import yaml

from vlmref.arguments import flag_fields
from vlmref.cli.main import build_parser, main

INFER_FLAGS = ["--model_type", "qwen-vl-chat", "--temperature", "0", "--dataset", "a.jsonl", "b.jsonl",
               "--stream", "false", "--stop_words", "###", "--max_length", "512", "--truncation_strategy",
               "truncation_left", "--check_dataset_strategy", "none", "--dtype", "fp32", "--eval_human", "None"]
INFER_VALUES = {"model_type": "qwen-vl-chat", "temperature": 0, "dataset": ["a.jsonl", "b.jsonl"], "stream": False,
                "stop_words": ["###"], "max_length": 512, "truncation_strategy": "truncation_left",
                "check_dataset_strategy": "none", "dtype": "fp32", "eval_human": None}
EXPORT_FLAGS = ["--ckpt_dir", "ck", "--merge_lora", "--merge_device_map", "cpu", "--dtype", "bf16"]
EXPORT_VALUES = {"ckpt_dir": "ck", "merge_lora": True, "merge_device_map": "cpu", "dtype": "bf16"}
CHECK_FLAGS = ["--model_type", "qwen-vl-chat", "--dataset", "d.jsonl", "--check_images", "false", "--json", "r.json"]
CHECK_VALUES = {"model_type": "qwen-vl-chat", "dataset": ["d.jsonl"], "check_images": False, "json": "r.json"}

CASES = {"infer": (INFER_FLAGS, INFER_VALUES, ("temperature", "0.7", 0.7)),
         "export": (EXPORT_FLAGS, EXPORT_VALUES, ("dtype", "fp32", "fp32")),
         "check-data": (CHECK_FLAGS, CHECK_VALUES, ("json", "other.json", "other.json"))}


def _write(path: Path, values: dict) -> str:
    path.write_text(json.dumps(values) if path.suffix == ".json" else yaml.safe_dump(values))
    return str(path)


def _values(ns: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(ns).items() if k not in ("func", "args_file")}


@pytest.mark.parametrize("command", sorted(CASES))
def test_args_file_gives_the_flags_values(command: str, tmp_path: Path) -> None:
    flags, values, _ = CASES[command]
    by_flags = _values(build_parser().parse_args([command, *flags]))
    assert {k: by_flags[k] for k in values} == values
    yaml_file = _write(tmp_path / "x.yaml", values)
    json_file = _write(tmp_path / "x.json", values)
    assert _values(build_parser().parse_args([command, "--args_file", yaml_file])) == by_flags
    assert _values(build_parser().parse_args([command, f"--args_file={yaml_file}"])) == by_flags
    assert _values(build_parser().parse_args([command, json_file])) == by_flags
    assert _values(build_parser().parse_args([command, _write(tmp_path / "x.yml", values)])) == by_flags


@pytest.mark.parametrize("command", sorted(CASES))
def test_a_flag_on_the_command_line_overrides_the_file(command: str, tmp_path: Path) -> None:
    _, values, (name, text, expected) = CASES[command]
    assert values.get(name) != expected
    yaml_file = _write(tmp_path / "x.yaml", values)
    json_file = _write(tmp_path / "x.json", values)
    for argv in ([command, "--args_file", yaml_file, f"--{name}", text],
                 [command, f"--{name}", text, "--args_file", yaml_file],
                 [command, json_file, f"--{name}", text]):
        ns = build_parser().parse_args(argv)
        assert getattr(ns, name) == expected, argv
        assert all(getattr(ns, k) == v for k, v in values.items() if k != name), argv


def test_infer_file_keeps_none_words_apart(tmp_path: Path) -> None:
    """``check_dataset_strategy: none`` is the strategy 'none' (not None, "not given", which a checkpoint's
    sft_args.json could replace); ``max_length: null`` is None."""
    from vlmref.arguments import dataclass_from
    from vlmref.cli.infer import build_parser as infer_parser
    from vlmref.llm.infer import InferArguments

    path = tmp_path / "i.yaml"
    path.write_text("model_type: qwen-vl-chat\ncheck_dataset_strategy: none\nmax_length: null\nval_dataset: v.jsonl\n")
    for argv in (["--args_file", str(path)], [str(path)]):  # the standalone `python -m vlmref.cli.infer` parser too
        ns = infer_parser().parse_args(argv)
        assert (ns.check_dataset_strategy, ns.max_length, ns.val_dataset) == ("none", None, ["v.jsonl"])
        args = dataclass_from(InferArguments, ns)
        assert (args.model_type, args.check_dataset_strategy, args.eval_human) == ("qwen-vl-chat", "none", False)


def test_check_data_runs_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"query": "hi", "response": "hello"}) + "\n")
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    values = {"model_type": "qwen-vl-chat", "dataset": [str(data)], "json": str(first)}
    for file in (_write(tmp_path / "c.yaml", values), _write(tmp_path / "c.json", values)):
        assert main(["check-data", "--args_file", file]) == 0
        report = json.loads(first.read_text())
        assert report["model_type"] == "qwen-vl-chat" and report["issues"] == [] and list(report["sources"]) == [str(data)]
        first.unlink()
        assert main(["check-data", file, "--json", str(second)]) == 0  # the flag overrides the file's --json
        assert second.exists() and not first.exists()
        second.unlink()
        assert f"report written to {second}" in capsys.readouterr().out
    bad = _write(tmp_path / "bad.yaml", {**values, "jsn": "x"})
    assert main(["check-data", bad]) == 2
    assert capsys.readouterr().err == f"error: {bad}: key 'jsn': --jsn (did you mean --json?)\n"


def test_export_standalone_takes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from vlmref.cli.export import main as export_main

    path = _write(tmp_path / "e.json", {"ckpt_dir": str(tmp_path)})
    assert export_main([path]) == 2  # --merge_lora is false: nothing to export
    assert capsys.readouterr().err.startswith("error: nothing to export: pass --merge_lora true")


# ---- every converted command: its flags are its dataclass's fields, each described in its help --------------------
def _commands() -> dict[str, type]:
    from vlmref.cli.check_data import CheckDataArguments
    from vlmref.cli.export import ExportArguments
    from vlmref.cli.main import DemoArguments, RenderArguments
    from vlmref.cli.models import CreateTinyArguments, ModelInfoArguments
    from vlmref.llm.infer import InferArguments

    return {"infer": InferArguments, "export": ExportArguments, "check-data": CheckDataArguments,
            "model-info": ModelInfoArguments, "create-tiny": CreateTinyArguments, "render": RenderArguments,
            "demo": DemoArguments}


@pytest.mark.parametrize("command", sorted(_commands()))
def test_help_describes_every_flag(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    dtype = _commands()[command]
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    parser = sub.choices[command]
    text = " ".join(parser.format_help().split())
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    fields = flag_fields(dtype)
    assert fields
    for f, _, _ in fields:
        action = actions[f.name]
        assert action.option_strings == [f"--{f.name}"] and f"--{f.name}" in text, (command, f.name)
        assert f.metadata["help"].strip() and " ".join(f.metadata["help"].split()) in text, (command, f.name)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        assert action.required is required and (required or action.help.endswith(")")), (command, f.name)
        assert required or "(default: " in action.help, (command, f.name)
    assert "--args_file FILE" in text


def test_infer_non_flag_fields_are_init_false() -> None:
    from vlmref.llm.infer import InferArguments

    hidden = [f.name for f in dataclasses.fields(InferArguments) if not f.init]
    assert hidden == ["sft_args", "infer_media_type"]
    assert not any("cli" in f.metadata for f in dataclasses.fields(InferArguments))


def test_template_profile_choices_are_the_profiles() -> None:
    from vlmref.cli.template_args import TemplateProfile
    from vlmref.templates.meta import PROFILES

    assert typing.get_args(TemplateProfile) == PROFILES
    ns = build_parser().parse_args(["render", "--model_type", "qwen-vl-chat", "--query", "q"])
    assert ns.template_profile == "official"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["check-data", "--model_type", "x", "--dataset", "d", "--template_profile", "s"])
