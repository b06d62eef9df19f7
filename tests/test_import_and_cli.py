"""The pure layer imports without torch; the CLI lists, renders and demos."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vlmref.cli.main import main
from vlmref.models.registry import MODELS


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("module", ["vlmref", "vlmref.templates", "vlmref.models.registry", "vlmref.cli.main"])
def test_pure_modules_do_not_import_torch(module: str) -> None:
    out = _run(f"import sys, {module}; print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))"
               .replace("import sys,", "import sys, json,"))
    assert json.loads(out) == []


def test_vlmref_exports_seed_api_lazily() -> None:
    import vlmref

    assert vlmref.get_default_template_type(vlmref.ModelType.cogvlm_17b_chat) == "cogvlm"
    assert vlmref.get_template is not None and vlmref.seed_everything(7, verbose=False) == 7


def test_list_models_prints_every_model_and_footprint(capsys) -> None:
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    for name in MODELS.names():
        assert name in out
    assert out.count("documented:") == 16
    assert "cogvlm-17b-chat" in out and "llava1_6-mistral-7b-instruct" in out


def test_list_templates_prints_deviations(capsys) -> None:
    assert main(["list", "templates"]) == 0
    out = capsys.readouterr().out
    assert "llava-mistral" in out and "conv_mistral_instruct" in out


def test_render_with_stand_in_shows_mask_and_ids(capsys, monkeypatch) -> None:
    monkeypatch.setenv("VLMREF_TOKENIZERS_DIR", "/nonexistent-vlmref-tokenizers")
    rc = main(["render", "--model_type", "llava1_6-mistral-7b-instruct", "--query", "Q2", "--response", "R2",
               "--history", '[["Q1", "R1"]]', "--system", "SYS"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "[INST] <<SYS>>\\nSYS\\n<</SYS>>\\n\\nQ1 [/INST][[R1]][[</s>]][INST] Q2 [/INST][[R2]][[</s>]]" in out
    assert "byte-level stand-in" in out and "[LABELS]    [-100 *" in out


def test_render_reports_template_errors(capsys) -> None:
    assert main(["render", "--model_type", "cogvlm-17b-chat", "--query", "hi", "--system", "x"]) == 1
    assert "does not support a system prompt" in capsys.readouterr().err
    assert main(["render", "--model_type", "no-such-model", "--query", "hi"]) == 2


def test_demo_renders_every_model(capsys, monkeypatch) -> None:
    monkeypatch.setenv("VLMREF_TOKENIZERS_DIR", "/nonexistent-vlmref-tokenizers")
    assert main(["demo", "--templates"]) == 0
    out = capsys.readouterr().out
    assert out.count("model_type: ") == len(MODELS) and f"rendered {len(MODELS)} model types" in out


@pytest.mark.slow
def test_workflow_demo_runs_end_to_end(tmp_path, capsys, monkeypatch) -> None:
    """`vlmref demo` (what `nox -s demo` runs): tiny LoRA sft on the offline sample -> merge -> inference."""
    monkeypatch.setenv("VLMREF_CACHE", str(tmp_path / "cache"))
    assert main(["demo", "--out", str(tmp_path / "demo"), "--max_steps", "3"]) == 0
    out = capsys.readouterr().out
    merged = sorted((tmp_path / "demo" / "output").glob("*/v*/checkpoint-*-merged"))
    assert len(merged) == 1 and (merged[0] / "model.safetensors").is_file()
    assert "[4/4] inference" in out and "response:" in out and str(merged[0]) in out
