"""``vlmref infer`` on a dataset: every result line is on disk as soon as it is generated, a rerun of an interrupted
run resumes its file and says how many rows it skipped, and the checkpoint folder is read-only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vlmref.llm.inference as inference_module
from vlmref.cli.main import main
from vlmref.models.tiny import create_tiny_checkpoint

MODEL = "qwen-vl-chat"  # takes text-only rows: fast generation on the tiny model


def _checkpoint(root: Path) -> Path:
    """A tiny full checkpoint in the sft layout (``sft_args.json`` names the model type)."""
    ckpt = create_tiny_checkpoint(MODEL, root / "output" / MODEL / "v0-20240101-000000" / "checkpoint-2")
    (ckpt / "sft_args.json").write_text(json.dumps({"model_type": MODEL, "model_id_or_path": str(ckpt),
                                                    "sft_type": "full", "template_type": "qwen-vl", "dtype": "fp32"}))
    return ckpt


def _dataset(root: Path, n: int) -> Path:
    path = root / "val.jsonl"
    path.write_text("".join(json.dumps({"query": f"Count to {i}.", "response": f"{i}"}) + "\n" for i in range(n)))
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "infer_result" not in p.parts}


def _argv(ckpt: Path, data: Path) -> list[str]:
    return ["infer", "--ckpt_dir", str(ckpt), "--val_dataset", str(data), "--show_dataset_sample", "-1",
            "--max_new_tokens", "3", "--temperature", "0", "--verbose", "false"]


@pytest.mark.real_tokenizer
def test_interrupted_run_resumes_and_leaves_the_checkpoint_unchanged(tmp_path: Path, tokenizers_root: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    ckpt, data = _checkpoint(tmp_path), _dataset(tmp_path, 5)
    before = _snapshot(ckpt)
    real, calls = inference_module.inference, []

    def dies_on_the_fourth(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(inference_module, "inference", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        main(_argv(ckpt, data))
    (results,) = (ckpt / "infer_result").glob("*.jsonl")
    assert len(results.read_text().splitlines()) == 3  # written while running, not at the end
    assert (ckpt / "infer_result" / (results.stem + ".progress.json")).is_file()
    with open(results, "a", encoding="utf-8") as f:
        f.write('{"system": "You are a hel')  # the torn line a kill -9 during a write leaves behind
    monkeypatch.setattr(inference_module, "inference", real)
    capsys.readouterr()

    assert main(_argv(ckpt, data)) == 0
    err = capsys.readouterr().err
    assert f"resuming {results}: 3 of 5 row(s) already done, skipped" in err
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["query"] for r in rows] == [f"Count to {i}." for i in range(5)]
    assert sorted(p.name for p in (ckpt / "infer_result").iterdir()) == sorted([
        results.name, results.stem + ".generation_config.json"])  # the run is complete: no progress file

    assert main(_argv(ckpt, data)) == 0  # a finished run is not resumed: a fresh file, the same greedy answers
    assert "resuming" not in capsys.readouterr().err
    fresh = [p for p in (ckpt / "infer_result").glob("*.jsonl") if p != results]
    assert len(fresh) == 1
    assert [json.loads(line) for line in fresh[0].read_text().splitlines()] == rows
    assert _snapshot(ckpt) == before  # generation_config.json and every other checkpoint file: bytes unchanged
    saved = json.loads((ckpt / "infer_result" / (results.stem + ".generation_config.json")).read_text())
    assert saved["max_new_tokens"] == 3 and saved["do_sample"] is False


@pytest.mark.real_tokenizer
def test_changed_arguments_start_a_new_file(tmp_path: Path, tokenizers_root: Path,
                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    ckpt, data = _checkpoint(tmp_path), _dataset(tmp_path, 3)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference_module, "inference", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(_argv(ckpt, data))
    monkeypatch.undo()
    capsys.readouterr()
    assert main([*_argv(ckpt, data), "--max_new_tokens", "2"]) == 0  # another generation config: not that run
    assert "resuming" not in capsys.readouterr().err
    done = [p for p in (ckpt / "infer_result").glob("*.jsonl") if p.read_text()]
    assert len(done) == 1 and len(done[0].read_text().splitlines()) == 3


@pytest.mark.slow
@pytest.mark.real_tokenizer
def test_kill_9_keeps_the_finished_rows(tmp_path: Path, tokenizers_root: Path) -> None:
    """A real SIGKILL in the middle of the dataset: the rows written so far survive; the rerun skips them."""
    from sft_worker import cli_env

    ckpt, data = _checkpoint(tmp_path), _dataset(tmp_path, 40)
    argv = [sys.executable, "-m", "vlmref", *_argv(ckpt, data)[:-4], "--max_new_tokens", "24", "--temperature", "0"]
    proc = subprocess.Popen(argv, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, results = time.time() + 300, None
        while time.time() < deadline and proc.poll() is None:
            found = list((ckpt / "infer_result").glob("*.jsonl"))
            if found and len(found[0].read_bytes().splitlines()) >= 3:
                results = found[0]
                break
            time.sleep(0.05)
        assert results is not None and proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = results.read_bytes().count(b"\n")
    assert kept >= 3
    done = subprocess.run(argv, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming {results}: {kept} of 40 row(s) already done, skipped" in done.stderr
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["query"] for r in rows] == [f"Count to {i}." for i in range(40)]
