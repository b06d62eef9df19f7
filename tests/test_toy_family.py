"""A sixth family added as a plugin: ``tests/toy_family`` (``VLMREF_FAMILY_MODULES=toy_family.family``) runs the
whole CLI chain, render -> check-data -> create-tiny -> sft (LoRA) -> export --merge_lora -> infer, with nothing in
``vlmref/`` naming it.

Every step is a subprocess of the real CLI (the toy family is never imported into the pytest process, so the other
tests' registries hold only the built-in families)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PLUGIN = "toy_family.family"
MODEL = "toy-vlm"
TOY_NAME = re.compile(rb"\btoy(?:\b|_)", re.IGNORECASE)  # toy, toy-vlm, toy_family, toy_vlm; not 'destroy'


def test_vlmref_never_names_the_toy_family() -> None:
    hits = [str(p.relative_to(REPO)) for p in sorted((REPO / "vlmref").rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and TOY_NAME.search(p.read_bytes())]
    assert hits == [], f"vlmref/ names the plugin family: {hits}"


@pytest.fixture
def llama2(tokenizers_root: Path) -> Path:
    folder = tokenizers_root / "llama2"
    if not (folder / "tokenizer.model").is_file():
        pytest.skip(f"the toy family uses the llama2 tokenizer: no {folder / 'tokenizer.model'}")
    return folder


def _env(tokenizers_root: Path, plugin: bool = True) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(REPO)]), OMP_NUM_THREADS="1",
               VLMREF_TOKENIZERS_DIR=str(tokenizers_root))
    env.pop("VLMREF_FAMILY_MODULES", None)
    if plugin:
        env["VLMREF_FAMILY_MODULES"] = PLUGIN
    return env


def _vlmref(cwd: Path, env: dict[str, str], *argv: str, code: int = 0) -> str:
    """``python -m vlmref argv`` in ``cwd``; asserts the exit status, returns stdout + stderr."""
    done = subprocess.run([sys.executable, "-m", "vlmref", *argv], cwd=str(cwd), env=env, capture_output=True,
                          text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == code, f"vlmref {' '.join(argv)}: exit {done.returncode}\n{out}"
    return out


def _data(tmp: Path) -> None:
    from PIL import Image

    Image.new("RGB", (40, 30), (255, 0, 0)).save(tmp / "red.png")
    Image.new("RGB", (30, 30), (0, 0, 255)).save(tmp / "blue.png")
    row = {"query": "<image>What colour?", "response": "red", "images": ["red.png"]}
    (tmp / "train.jsonl").write_text((json.dumps(row) + "\n") * 4)
    two = {"query": "<image><image>Compare.", "response": "red, blue", "images": ["red.png", "blue.png"]}
    (tmp / "two.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(two) + "\n")


@pytest.mark.slow  # ~35 s: six CLI processes, each importing torch
@pytest.mark.real_tokenizer
def test_toy_family_runs_the_cli_chain(tmp_path: Path, tokenizers_root: Path, llama2: Path) -> None:
    env = _env(tokenizers_root)
    _data(tmp_path)

    # without the plugin the model type does not exist: everything below comes from tests/toy_family
    out = _vlmref(tmp_path, _env(tokenizers_root, plugin=False), "render", "--model_type", MODEL, "--query", "hi",
                  code=2)
    assert f"unknown model_type {MODEL!r}" in out

    # render: the toy prompt, 4 image positions (-200) at ids[5:9], the real llama2 tokenizer
    out = _vlmref(tmp_path, env, "render", "--model_type", MODEL, "--query", "<image>What colour?", "--response",
                  "red", "--images", "red.png")
    assert f"template: toy (official)   tokenizer: {llama2} (sentencepiece)" in out
    assert "[RENDERED]  '⟦<s>⟧USER: ⟦image 0⟧\\nWhat colour? ASSISTANT:red⟦</s>⟧'" in out
    assert "[-200 * 4]" in out and "at (start, length) [[5, 4]]" in out

    # check-data: valid rows pass; two images break the toy rule (max_images=1), named with its note
    out = _vlmref(tmp_path, env, "check-data", "--model_type", MODEL, "--dataset", "train.jsonl", "--max_length", "64")
    assert "train.jsonl: 4 rows, 4 valid, 0 invalid" in out
    out = _vlmref(tmp_path, env, "check-data", "--model_type", MODEL, "--dataset", "two.jsonl", code=1)
    assert ("two.jsonl:2: field 'images': expected at most 1 image(s) (toy-vlm: at most one image per conversation); "
            "found 2") in out
    assert "two.jsonl: 2 rows, 1 valid, 1 invalid" in out

    # create-tiny: the toy architecture, the llama2 vocabulary, the toy image processor
    tiny = tmp_path / "tiny"
    _vlmref(tmp_path, env, "create-tiny", "--model_type", MODEL, "--out", str(tiny))
    config = json.loads((tiny / "config.json").read_text())
    assert config["architectures"] == ["ToyForCausalLM"] and config["model_type"] == "toy_vlm"
    assert config["vocab_size"] == 32000 and (tiny / "model.safetensors").is_file()
    assert (tiny / "tokenizer.model").read_bytes() == (llama2 / "tokenizer.model").read_bytes()
    assert json.loads((tiny / "vlmref_processor.json").read_text())["processor_class"] == "ToyImageProcessor"

    # sft: LoRA on the toy DEFAULT targets (q_proj, v_proj of 2 layers), 2 steps, image spans of 4
    out = _vlmref(tmp_path, env, "sft", "--model_type", MODEL, "--model_id_or_path", str(tiny), "--dataset",
                  "train.jsonl", "--output_dir", "out", "--max_steps", "2", "--gradient_accumulation_steps", "1",
                  "--learning_rate", "5e-3", "--warmup_ratio", "0", "--logging_steps", "1", "--eval_steps", "2",
                  "--save_steps", "2", "--dataset_test_ratio", "0.25", "--max_length", "128",
                  "--gradient_checkpointing", "false", "--disable_tqdm", "true")
    assert "LoRA wraps 4 Linear module(s): model.layers.*.self_attn.q_proj (2); model.layers.*.self_attn.v_proj (2)" \
        in out
    assert re.search(r"\[image 0: [^\]\n]*red\.png, 4 positions\]", out)
    (run,) = (tmp_path / "out" / MODEL).iterdir()
    ckpt = run / "checkpoint-2"
    assert {"adapter_config.json", "adapter_model.safetensors", "sft_args.json"} <= {p.name for p in ckpt.iterdir()}
    assert set(json.loads((ckpt / "adapter_config.json").read_text())["target_modules"]) == {"q_proj", "v_proj"}
    assert json.loads((ckpt / "sft_args.json").read_text())["template_type"] == "toy"
    losses = [r["loss"] for r in map(json.loads, (run / "logging.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses), losses

    # export --merge_lora: a full toy model folder, no LoRA keys left
    out = _vlmref(tmp_path, env, "export", "--ckpt_dir", str(ckpt), "--merge_lora", "true")
    merged = run / "checkpoint-2-merged"
    assert f"Successfully merged LoRA and saved in {merged}" in out
    assert json.loads((merged / "config.json").read_text())["model_type"] == "toy_vlm"
    from safetensors import safe_open

    with safe_open(str(merged / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert {"vision_tower.patch_embed.weight", "projector.0.weight", "lm_head.weight"} <= keys
    assert not [k for k in keys if "lora" in k]

    # infer on the merged model: greedy, 3 new tokens, the toy prompt with its 4 image positions
    out = _vlmref(tmp_path, env, "infer", "--ckpt_dir", str(merged), "--val_dataset", "train.jsonl",
                  "--show_dataset_sample", "1", "--max_new_tokens", "3", "--do_sample", "false")
    assert "[PROMPT]<s>USER: [-200 * 4]\nWhat colour? ASSISTANT:[OUTPUT]" in out
    (result,) = (merged / "infer_result").glob("*.jsonl")
    (row,) = map(json.loads, result.read_text().splitlines())
    assert row["label"] == "red" and isinstance(row["response"], str) and row["response"] and "error" not in row
