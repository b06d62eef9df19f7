"""The pure layer imports without torch; the CLI lists, renders and demos."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest

from vlmref.cli.main import main
from vlmref.models.model_types import MODELS


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("module", ["vlmref", "vlmref.templates", "vlmref.models.model_types", "vlmref.cli.main"])
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
    # the closing hint's chat command opens the chat (the REPL banner and prompt), not a dataset evaluation
    lines = out.splitlines()
    chat = lines[lines.index(next(x for x in lines if x.endswith("Interactive chat with the merged model:"))) + 1]
    argv = shlex.split(chat)
    assert argv[:2] == ["vlmref", "infer"]
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt="": prompts.append(prompt) or "exit")
    assert main(argv[1:]) == 0
    chat_err = capsys.readouterr().err
    assert prompts == ["<<< "] and "Input `exit` or `quit` to exit the conversation." in chat_err
    assert "val_dataset:" not in chat_err


def test_python_dash_m_vlmref_is_the_cli() -> None:
    """``python -m vlmref`` runs the same entry point as the ``vlmref`` script, exit codes included."""
    done = subprocess.run([sys.executable, "-m", "vlmref", "list", "models"], capture_output=True, text=True)
    assert done.returncode == 0 and all(name in done.stdout for name in MODELS.names())
    bad = subprocess.run([sys.executable, "-m", "vlmref", "model-info", "--model_type", "no-such-model"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown model_type 'no-such-model'")


def test_output_piped_to_head_ends_quietly(tmp_path) -> None:
    """``vlmref check-data ... | head -2``: the reader leaves early; no BrokenPipe traceback, exit 141 (SIGPIPE)."""
    data = tmp_path / "bad.jsonl"
    data.write_text("".join(json.dumps({"query": f"q{i}", "response": "r"}) + "\n" for i in range(20000)))
    proc = subprocess.Popen([sys.executable, "-m", "vlmref", "check-data", "--model_type", "cogvlm-17b-instruct",
                             "--dataset", str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = [proc.stdout.readline() for _ in range(2)]
    proc.stdout.close()  # what `head` does after its lines
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert all(b"field 'images'" in line for line in first)
    assert "Traceback" not in err and "BrokenPipe" not in err and "error:" not in err, err[-2000:]


@pytest.mark.parametrize("model_type", MODELS.names())
def test_render_stand_in_has_the_real_special_token_ids(model_type: str) -> None:
    """README: without the tokenizer files the stand-in keeps the real special-token ids."""
    from vlmref.cli.render import STAND_IN_MARKER_IDS, stand_in_tokenizer
    from vlmref.models.fallback_tokenizer import recorded_specials

    real = recorded_specials(model_type)["ids"]
    tok = stand_in_tokenizer(model_type)
    shared = set(tok.specials) & set(real)
    assert shared and {n: tok.specials[n] for n in shared} == {n: real[n] for n in shared}
    assert all(v >= STAND_IN_MARKER_IDS for n, v in tok.specials.items() if n not in real)


def test_render_stand_in_mistral_ids(capsys, monkeypatch) -> None:
    monkeypatch.setenv("VLMREF_TOKENIZERS_DIR", "/nonexistent-vlmref-tokenizers")
    assert main(["render", "--model_type", "llava1d6-mistral-7b-instruct", "--query", "Q", "--response", "R"]) == 0
    ids_line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("[INPUT_IDS]"))
    ids = ids_line.split(")", 1)[1].split()
    assert ids[0] == "1" and ids[-1] == "2"  # Mistral's <s> and </s>, as the real tokenizer has them


def _render(capsys, *argv: str) -> list[str]:
    assert main(["render", *argv]) == 0
    return capsys.readouterr().out.splitlines()


def _cogvlm_render_checks(lines: list[str], pad: int) -> None:
    n = MODELS.get("cogvlm-17b-instruct").media_options["vision_tokens"]
    rendered = next(i for i, x in enumerate(lines) if x.startswith("[RENDERED]"))
    assert lines[rendered] == "[RENDERED]  '⟦<s>⟧Question: Describe this image. Answer:A cat.⟦</s>⟧'"
    assert lines[rendered + 1] == f"            + ⟦image 0⟧ at ids[1:{1 + n}]"
    assert lines[rendered + 2].startswith("[MASK]      '⟦<s>⟧Question: Describe this image. Answer:[[A cat.]][[⟦</s>⟧]]'")
    ids_line = next(x for x in lines if x.startswith("[INPUT_IDS]"))
    assert ids_line.split(")", 1)[1].startswith(f" 1 [{pad} * {n}] ")  # the marked range is the vision positions


def test_render_cogvlm_names_ids_and_marks_the_image(capsys, monkeypatch) -> None:
    monkeypatch.setenv("VLMREF_TOKENIZERS_DIR", "/nonexistent-vlmref-tokenizers")
    lines = _render(capsys, "--model_type", "cogvlm-17b-chat", "--query", "Describe this image.", "--response", "A cat.",
                    "--images", "cat.png")
    from vlmref.cli.render import stand_in_tokenizer

    _cogvlm_render_checks(lines, stand_in_tokenizer("cogvlm-17b-instruct").pad_token_id)
    text_only = _render(capsys, "--model_type", "cogvlm-17b-chat", "--query", "Hi", "--response", "Hello.")
    assert "[RENDERED]  '⟦<s>⟧Question: Hi Answer:Hello.⟦</s>⟧'" in text_only
    assert not any("+ ⟦image" in x for x in text_only)


@pytest.mark.real_tokenizer
def test_render_cogvlm_real_tokenizer(capsys, tokenizers_root) -> None:
    folder = tokenizers_root / MODELS.get("cogvlm-17b-instruct").tokenizer.family
    lines = _render(capsys, "--model_type", "cogvlm-17b-instruct", "--query", "Describe this image.", "--response",
                    "A cat.", "--images", "cat.png", "--model_id_or_path", str(folder))
    _cogvlm_render_checks(lines, 0)  # vicuna's pad <unk> = 0


def test_render_marks_only_images_placed_outside_the_text(capsys, monkeypatch, tmp_path) -> None:
    """Every model and profile: no id segment prints as a bare token id; the image line appears exactly where the
    media step puts the image where the text shows none (CogVLM after BOS; ms-swift's XComposer2 after the text)."""
    from PIL import Image

    monkeypatch.setenv("VLMREF_TOKENIZERS_DIR", "/nonexistent-vlmref-tokenizers")
    image = tmp_path / "cat.png"
    Image.new("RGB", (640, 480)).save(image)
    marked = set()
    for model_type in MODELS.names():
        for profile in ("official", "swift-2.2.0"):
            if main(["render", "--model_type", model_type, "--query", "Describe this image.", "--response", "A cat.",
                     "--images", str(image), "--template_profile", profile]) != 0:
                capsys.readouterr()
                continue  # internlm-xcomposer2_5 has no swift-2.2.0 template
            out = capsys.readouterr().out
            assert not re.search(r"⟦\d+⟧", out), out  # ⟦-200⟧ (an image marker, no token) stays
            if "+ ⟦image 0⟧ at ids[" in out:
                marked.add((MODELS.get(model_type).template, profile))
    assert marked == {("cogvlm", "official"), ("cogvlm", "swift-2.2.0"), ("internlm-xcomposer2", "swift-2.2.0")}
