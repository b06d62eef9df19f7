"""``vlmref conform`` and its pytest plugin: vlmref's own encoder is 100 % equal to the reference, ms-swift 2.2.0's
profile differs from the official one exactly by the recorded deviations, planted bugs and image placements."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlmref.conform.compare import ImageIds, normalise
from vlmref.tokenizers.loader import shared_tokenizers_dir

HERE = Path(__file__).resolve().parent
ADAPTERS = HERE / "conform_adapters"
needs_tokenizers = pytest.mark.skipif(shared_tokenizers_dir() is None,
                                      reason="the reference needs the real tokenizer files (../shared/tokenizers or "
                                             "VLMREF_TOKENIZERS_DIR)")


def _conform(*argv: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlmref", "conform", *argv], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)


@needs_tokenizers
@pytest.mark.parametrize(("adapter", "profile"), [("official", "official"), ("swift_2_2_0", "swift-2.2.0")])
def test_vlmrefs_own_encoder_is_equal_on_every_case(adapter: str, profile: str, tmp_path) -> None:
    done = _conform("--adapter", f"vlmref.conform.builtin:{adapter}", "--profile", profile, "--json",
                    str(tmp_path / "c.json"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["schema"] == "vlmref-conform/1" and data["profile"] == profile
    assert all(m["differ"] == 0 and m["equal"] == m["cases"] > 0 for m in data["models"])
    expected = 11 if profile == "official" else 10  # ms-swift 2.2.0 has no InternLM-XComposer2.5 template
    assert len(data["models"]) == expected


@needs_tokenizers
def test_swift_profile_against_official_differs_only_by_recorded_deviations(tmp_path) -> None:
    """The same comparison the oracle tests make, through conform: every difference of ms-swift 2.2.0's format
    from the official one is explained by a recorded deviation, and the report shows the first of each kind."""
    report = tmp_path / "c.md"
    done = _conform("--adapter", "vlmref.conform.builtin:swift_2_2_0", "--model_type", "llava1d6-mistral-7b-instruct",
                    "qwen-vl-chat", "--report", str(report), "--json", str(tmp_path / "c.json"))
    assert done.returncode == 1
    data = json.loads((tmp_path / "c.json").read_text())
    kinds = {d["kind"] for m in data["models"] for d in m["differences"]}
    assert kinds and not any(k.startswith("unexplained") for k in kinds), kinds
    assert {"llava-mistral-turns", "typed-special-tokens"} <= {i for k in kinds for i in k.split(" + ")}
    md = report.read_text()
    assert "## llava1d6-mistral-7b-instruct: llava-mistral-turns (" in md
    assert "First: `llava1d6-mistral-7b-instruct/golden/multi_turn`, input_ids differ" in md
    assert "> 18  733     [         -100       1015        And" in md  # the token-aligned view


@needs_tokenizers
def test_a_planted_bug_is_found_unexplained_with_its_view(tmp_path) -> None:
    done = _conform("--adapter", "example_adapters:drops_last_label", "--adapter_path", str(ADAPTERS),
                    "--report", str(tmp_path / "c.md"))
    assert done.returncode == 1
    assert "| qwen-vl-chat | qwen-vl | 212 |" in done.stdout  # the adapter covers qwen-vl-chat only
    md = (tmp_path / "c.md").read_text()
    assert "## qwen-vl-chat: unexplained labels (" in md and "No recorded deviation explains it." in md
    assert "drops-last-label" in md.splitlines()[0]


@needs_tokenizers
def test_one_placeholder_per_image_is_equal_after_normalising_image_runs() -> None:
    done = _conform("--adapter", "example_adapters:one_placeholder_per_image", "--adapter_path", str(ADAPTERS))
    assert done.returncode == 0, done.stdout[-2000:]
    assert "210/210 cases equal" in done.stdout


@needs_tokenizers
def test_the_adapter_in_another_interpreter_gives_the_same_result(tmp_path) -> None:
    """--adapter_python runs vlmref/conform/worker.py there (this interpreter stands in for another venv's)."""
    inproc = _conform("--adapter", "example_adapters:drops_last_label", "--adapter_path", str(ADAPTERS),
                      "--json", str(tmp_path / "a.json"))
    worker = _conform("--adapter", "example_adapters:drops_last_label", "--adapter_path", str(ADAPTERS),
                      "--adapter_python", sys.executable, "--json", str(tmp_path / "b.json"))
    assert inproc.returncode == worker.returncode == 1
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a["models"] == b["models"] and a["adapter_name"] == b["adapter_name"] == "drops-last-label"


@pytest.mark.parametrize(("argv", "message"), [
    (["--adapter", "no_such_module:encode"], "error: --adapter no_such_module:encode: cannot import"),
    (["--adapter", "vlmref.conform.builtin"], "error: --adapter: expected module:function"),
    (["--adapter", "vlmref.conform.builtin:nope"], "has no 'nope'"),
    (["--adapter", "example_adapters:not_callable", "--adapter_path", str(ADAPTERS)], "not callable"),
    (["--adapter", "vlmref.conform.builtin:official", "--model_type", "nope"], "--model_type 'nope': unknown"),
    (["--adapter", "x:y", "--adapter_python", "/nonexistent/python"], "cannot start it"),
])
def test_bad_adapters_and_flags_are_one_error_line(argv: list[str], message: str) -> None:
    done = _conform(*argv)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("error:") == 1


def test_without_tokenizer_files_the_run_says_what_it_needs(tmp_path) -> None:
    env = {**os.environ, "VLMREF_TOKENIZERS_DIR": str(tmp_path / "none")}
    done = _conform("--adapter", "vlmref.conform.builtin:official", env=env)
    assert done.returncode == 2 and "needs the real tokenizer files" in done.stderr


def test_normalising_collapses_markup_runs_and_keeps_their_lengths() -> None:
    """Qwen-VL style: <img> path pads </img> is one image run, whatever ids it holds."""
    marks = ImageIds(frozenset({9}), open_close=(5, 6))
    view = normalise({"input_ids": [1, 5, 40, 41, 9, 9, 6, 2], "labels": [-100] * 7 + [2]}, marks)
    assert view.ids == (1, "<image>", 2) and view.image_lengths == (6,)
    spans = normalise({"input_ids": [1, 3, 3, 2], "labels": [-100, -100, 3, 2], "image_spans": [[1, 2]]}, marks)
    assert spans.ids == (1, "<image>", 2) and spans.labels == (-100, "labelled", 2)


@needs_tokenizers
def test_pytest_plugin_turns_the_cases_into_tests(tmp_path) -> None:
    """`pytest --vlmref-conform module:function` (the pytest11 entry point) in a folder with no tests of its own."""
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--vlmref-conform-model-type",
            "qwen-vl-chat"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ADAPTERS), os.environ.get("PYTHONPATH", "")])}
    good = subprocess.run([*base, "--vlmref-conform", "vlmref.conform.builtin:official"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=600)
    assert good.returncode == 0 and "212 passed" in good.stdout, good.stdout[-2000:]
    bad = subprocess.run([*base, "--vlmref-conform", "example_adapters:drops_last_label"], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=600)
    assert bad.returncode == 1 and "no recorded deviation explains it" in bad.stdout
    assert "vlmref-conform[qwen-vl-chat/golden/single_turn]" in bad.stdout
    none = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=600)
    assert none.returncode == 5  # no option, no tests: the plugin adds nothing


@needs_tokenizers
@pytest.mark.parametrize("worker", [False, True])
def test_an_adapter_without_truncation_gets_those_cases_skipped(worker: bool, tmp_path) -> None:
    extra = ["--adapter_python", sys.executable] if worker else []
    done = _conform("--adapter", "example_adapters:without_truncation", "--adapter_path", str(ADAPTERS), *extra,
                    "--json", str(tmp_path / "c.json"))
    assert done.returncode == 0, done.stdout[-2000:]
    (model,) = json.loads((tmp_path / "c.json").read_text())["models"]
    assert model["skipped"] > 0 and model["differ"] == 0 and model["equal"] + model["skipped"] == model["cases"]


def test_inline_image_markup_gets_absolute_paths_too() -> None:
    from vlmref.conform.cases import GOLDEN, cases_for

    inline = [c for c in cases_for("internlm-xcomposer2-7b-chat") if "<img>images/" in json.dumps(c.example)]
    assert inline, "the XComposer2 oracle samples have inline <img>path</img> images"
    text = json.dumps(inline[0].adapter_example())
    assert "<img>images/" not in text and f"<img>{(GOLDEN / 'images').resolve()}" in text


@needs_tokenizers
def test_an_adapter_that_prints_to_stdout_does_not_break_the_worker_protocol() -> None:
    done = _conform("--adapter", "example_adapters:chatty", "--adapter_path", str(ADAPTERS),
                    "--adapter_python", sys.executable)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "211/211 cases equal" in done.stdout and "[chatty] encoding for yi-vl-6b-chat" in done.stderr
