"""Helpers for the ``vlmref sft`` tests and benchmark: tiny checkpoints, a memorisable dataset, CLI subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def tiny_checkpoint(root: Path, model_type: str) -> Path:
    """A tiny random checkpoint for ``model_type`` under ``root`` (created once per root)."""
    from vlmref.models.tiny import create_tiny_checkpoint

    out = root / f"tiny-{model_type}"
    if not (out / "config.json").is_file():
        create_tiny_checkpoint(model_type, out, overwrite=True)
    return out


def memorise_jsonl(folder: Path, copies: int = 8, index: int = 0) -> Path:
    """``copies`` identical rows (row ``index`` of coco-en-2-mini-sample, image in the ``images`` column)."""
    from vlmref.datasets.named import coco_images_row, sample_raw_rows

    row = coco_images_row(sample_raw_rows("coco-en-2-mini-sample")[index])
    path = folder / "memorise.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for _ in range(copies)))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


class RunsCode:
    """Unpickling this runs code (writes ``marker``): what a checkpoint must never be able to do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def run_cli(argv: list[str], timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
    """``python -m vlmref.cli.sft argv`` in a subprocess (``env`` adds variables, e.g. NPROC_PER_NODE)."""
    return subprocess.run([sys.executable, "-m", "vlmref.cli.sft", *argv], cwd=str(REPO), env=cli_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def run_dirs(output_dir: Path, model_type: str) -> list[Path]:
    folder = output_dir / model_type
    return sorted(folder.iterdir(), key=lambda p: int(p.name[1:].split("-")[0])) if folder.is_dir() else []


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "loss" in r]


def eval_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "eval_loss" in r]


def adapter_loss(base_dir: Path, ckpt: Path, model_type: str, sample_row: dict[str, Any]) -> float:
    """Loss of the base model + the checkpoint's LoRA adapter (peft ``PeftModel.from_pretrained``) on one row."""
    import torch
    from peft import PeftModel

    from vlmref.datasets.collate import DataCollator
    from vlmref.models.loader import get_model_tokenizer
    from vlmref.models.model_types import MODELS
    from vlmref.templates import get_template

    base, tok = get_model_tokenizer(model_type, torch.float32, model_id_or_path=str(base_dir))
    model = PeftModel.from_pretrained(base, str(ckpt)).eval()
    meta = MODELS.get(model_type)
    enc = get_template(meta.template, tok, **meta.media_options).encode(sample_row)
    with torch.no_grad():
        return float(model(**DataCollator(model_type, tok)([enc])).loss)
