"""``vlmref memory`` / ``vlmref bench`` take their flags from dataclasses (``vlmref.arguments``): ``ScenarioArguments``
shared, ``MemoryArguments`` / ``BenchArguments`` on top; an ``--args_file`` gives the same scenario as the flags, and
every flag has a help text."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vlmref.cli.bench import BenchArguments
from vlmref.cli.main import build_parser
from vlmref.cli.memory import MemoryArguments
from vlmref.cli.scenario_args import SCENARIO_GROUP, ScenarioArguments, scenario_from_args
from vlmref.memory.scenario import MemoryScenario, ScenarioError

REPO = Path(__file__).resolve().parents[1]

SCENARIO_FLAGS = ["--model_type", "qwen-vl-chat", "--mode", "sft", "--sft_type", "full", "--dtype", "fp32",
                  "--max_length", "1024", "--text_tokens", "32", "--images", "2", "--batch_size", "2",
                  "--lora_rank", "16", "--lora_alpha", "64", "--world_size", "2", "--new_tokens", "8",
                  "--image_size", "336x448", "--gradient_checkpointing", "false", "--lora_target_modules", "c_attn",
                  "attn.c_proj", "--deepspeed", "default-zero2", "--attention", "eager"]
SCENARIO_YAML = """\
model_type: qwen-vl-chat
mode: sft
sft_type: full
dtype: fp32
max_length: 1024
text_tokens: 32
images: 2
batch_size: 2
lora_rank: 16
lora_alpha: 64
world_size: 2
new_tokens: 8
image_size: 336x448
gradient_checkpointing: false
lora_target_modules: [c_attn, attn.c_proj]
deepspeed: default-zero2
attention: eager
"""
EXPECTED = MemoryScenario("qwen-vl-chat", "sft", sft_type="full", dtype="fp32", max_length=1024, text_tokens=32,
                          images=2, batch_size=2, lora_rank=16, lora_alpha=64, world_size=2, new_tokens=8,
                          image_size=(336, 448), gradient_checkpointing=False,
                          lora_target_modules=("c_attn", "attn.c_proj"), deepspeed="zero2", attention="eager")


def _scenario(*argv: str) -> MemoryScenario:
    return scenario_from_args(build_parser().parse_args(["memory", *argv]))


def test_args_file_gives_the_same_scenario_as_the_flags(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO_YAML)
    assert _scenario(*SCENARIO_FLAGS) == EXPECTED
    assert _scenario("--args_file", str(path)) == EXPECTED
    assert _scenario(str(path)) == EXPECTED  # memory has no positional: the file may come first
    as_json = tmp_path / "scenario.json"
    as_json.write_text(json.dumps({"model_type": "qwen-vl-chat", "mode": "sft", "sft_type": "full", "dtype": "fp32",
                                   "max_length": 1024, "text_tokens": 32, "images": 2, "batch_size": 2,
                                   "lora_rank": 16, "lora_alpha": 64, "world_size": 2, "new_tokens": 8,
                                   "image_size": "336x448", "gradient_checkpointing": False,
                                   "lora_target_modules": ["c_attn", "attn.c_proj"], "deepspeed": "default-zero2",
                                   "attention": "eager"}))
    assert _scenario("--args_file", str(as_json)) == EXPECTED


def test_a_flag_overrides_the_args_file(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO_YAML)
    for argv in (["--args_file", str(path), "--batch_size", "4", "--image_size", "480x640"],
                 ["--batch_size", "4", "--args_file", str(path), "--image_size", "480x640"]):  # wherever the file is
        assert _scenario(*argv) == dataclasses.replace(EXPECTED, batch_size=4, image_size=(480, 640))
    assert _scenario("--args_file", str(path), "--gradient_checkpointing", "None").gradient_checkpointing is None
    ns = build_parser().parse_args(["memory", "--args_file", str(path), "--json", "--tiny"])
    assert (ns.json, ns.tiny, ns.model_type) == (True, True, "qwen-vl-chat")


def test_memory_args_file_runs_the_command(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("model_type: qwen-vl-chat\nmode: infer\ntext_tokens: 8\nnew_tokens: 2\ntiny: true\njson: true\n")
    done = subprocess.run([sys.executable, "-m", "vlmref", "memory", "--args_file", str(path), "--new_tokens", "3"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr
    scenario = json.loads(done.stdout)["scenario"]
    assert (scenario["mode"], scenario["text_tokens"], scenario["new_tokens"]) == ("infer", 8, 3)


@pytest.mark.parametrize(("content", "message"), [
    ("image_size: 480-640\n", "scenario.yaml: key 'image_size': expected HEIGHTxWIDTH, e.g. 480x640; got '480-640'"),
    ("mode: train\n", "scenario.yaml: key 'mode': expected one of infer, sft; found 'train'"),
    ("batch_sise: 2\n", "scenario.yaml: key 'batch_sise': --batch_sise (did you mean --batch_size?)"),
])
def test_bad_args_file_is_one_error_line(tmp_path: Path, content: str, message: str, capsys) -> None:
    from vlmref.cli.memory import main as memory_main

    path = tmp_path / "scenario.yaml"
    path.write_text(content)
    assert memory_main(["--args_file", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and line.endswith(message), line


def test_image_size_is_checked_as_before(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["memory", "--image_size", "480"])
    assert exit_.value.code == 2
    assert "argument --image_size: expected HEIGHTxWIDTH, e.g. 480x640; got '480'" in capsys.readouterr().err
    bad = ScenarioArguments(model_type="qwen-vl-chat", mode="infer", image_size="big")  # built in code, not parsed
    with pytest.raises(ScenarioError, match=re.escape("--image_size: expected HEIGHTxWIDTH, e.g. 480x640; got 'big'")):
        scenario_from_args(bad)


def test_dataclasses_share_the_scenario_fields_in_one_group() -> None:
    scenario = [f.name for f in dataclasses.fields(ScenarioArguments)]
    for dtype, own_first, own_last in [
        (MemoryArguments, ["documented", "anchors", "only", "out_dir", "stem", "chart_from", "out", "json", "tiny"], []),
        (BenchArguments, ["documented", "only", "device", "tiny", "steps", "out", "out_dir", "predict",
                          "snapshot_entries"],
         ["compare", "compare_documented", "tolerance", "allow_missing"]),
    ]:
        assert issubclass(dtype, ScenarioArguments)
        assert [f.name for f in dataclasses.fields(dtype)] == own_first + scenario + own_last
        assert dtype.ARGUMENT_GROUPS["model_type"] == SCENARIO_GROUP
    assert all(getattr(MemoryArguments(), name) is None for name in scenario)  # None: the scenario's default


def _help(command: str) -> str:
    done = subprocess.run([sys.executable, "-m", "vlmref", command, "--help"], capture_output=True, text=True,
                          timeout=600, cwd=REPO, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def _entries(text: str) -> dict[str, str]:
    """``--flag`` (or a positional's name) -> its help entry, whitespace collapsed."""
    entries: dict[str, str] = {}
    current = None
    for line in text.partition("\noptions:\n")[2].splitlines():
        m = re.match(r"^  (?:-\w, )?(--[a-z0-9_]+|[A-Z][A-Za-z.]+)", line)
        if m:
            current = m.group(1)
            entries[current] = line
        elif current and line.startswith("      "):
            entries[current] += " " + line
        else:
            current = None
    return {k: " ".join(v.split()) for k, v in entries.items()}


@pytest.mark.parametrize(("command", "dtype"), [("memory", MemoryArguments), ("bench", BenchArguments)])
def test_help_describes_every_flag(command: str, dtype: type) -> None:
    text = _help(command)
    entries = _entries(text)
    names = [f.name for f in dataclasses.fields(dtype)]
    assert sorted(entries) == sorted(["--help", "--args_file", *(f"--{n}" for n in names)]
                                     + (["RESULT.json"] if command == "bench" else []))
    for f in dataclasses.fields(dtype):
        entry = entries[f"--{f.name}"]
        described = f.metadata["help"]
        assert described.strip() and "\n" not in described, f.name
        assert " ".join(described.split()) in entry, (f.name, entry)
        shown = "false" if f.default is False else str(f.default)
        assert entry.endswith(f"(default: {shown})"), (f.name, entry)
    assert "the file the gate checks" in entries.get("RESULT.json", "the file the gate checks")
    # groups, choices and metavars as before the dataclasses
    options, _, scenario = text.partition("\noptions:\n")[2].partition(f"\n{SCENARIO_GROUP}:\n")
    assert "--documented [{true,false}]" in options and "--model_type" not in options
    assert "--model_type MODEL_TYPE" in scenario and "--documented [" not in scenario
    for expected in ["--mode {infer,sft} ", "--sft_type {lora,full}", "--dtype {bf16,fp16,fp32}",
                     "--attention {sdpa,eager}", "--deepspeed {default-zero2,default-zero3,zero3-offload,PATH.json}",
                     "--gradient_checkpointing [{true,false}]", "--image_size IMAGE_SIZE", "--only KEY [KEY ...]",
                     "--lora_target_modules LORA_TARGET_MODULES [LORA_TARGET_MODULES ...]"]:
        assert expected in text, expected
    if command == "bench":
        gate = scenario.partition("\nregression gate (no scenario runs):\n")[2]
        assert "--compare BASELINE.json" in gate and "--device {cuda,cpu}" in options
        assert re.search(r"^  RESULT\.json +the file the gate checks$", gate, re.M)
        assert text.startswith("usage: vlmref bench [-h] [--args_file FILE]")
    else:
        assert "--chart_from JSON" in options and "--out PNG" in options


def test_bench_standalone_takes_args_file_and_positional(tmp_path: Path, capsys) -> None:
    from vlmref.cli import bench

    path = tmp_path / "gate.yaml"
    path.write_text("compare_documented: true\ntolerance: 0.2\n")
    ns = bench.build_parser().parse_args(["--args_file", str(path), "r.json"])
    assert (ns.compare_documented, ns.tolerance, ns.result) == (True, 0.2, "r.json")
    ns = bench.build_parser().parse_args(["--compare_documented", "r.json"])
    assert (ns.compare_documented, ns.result) == (True, "r.json")
    assert bench.main(["--documented", "--devise", "cpu"]) == 2
    assert capsys.readouterr().err == "error: unrecognised argument(s): --devise (did you mean --device?)\n"
