"""Checkpoint state files are data, never code: RNG / optimizer / scheduler state is written as tensors and numbers
and read with ``torch.load(weights_only=True)``; a file that asks for anything else stops the resume (exit 2) before
it can run; checkpoints of the previous RNG format still resume."""

from __future__ import annotations

import json
import random
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from sft_worker import RunsCode, memorise_jsonl, read_jsonl, tiny_checkpoint, train_records

from vlmref.llm.safe_state import (
    CheckpointStateError,
    SafeCheckpointEngine,
    load_plain,
    load_rng_state,
    safe_deepspeed_loads,
    save_rng_state,
)
from vlmref.llm.sft_checkpoint import get_rng_state, set_rng_state
from vlmref.utils import current_umask


def _draws() -> tuple:
    return (random.random(), random.gauss(0, 1), np.random.rand(), np.random.randn(), torch.rand(3).tolist())


def test_rng_state_round_trip_is_plain_data(tmp_path: Path) -> None:
    random.gauss(0, 1)
    np.random.randn()  # leave cached gaussians behind: they are part of the state
    path = tmp_path / "rng_state.pth"
    save_rng_state(str(path))
    expected = _draws()
    _draws()
    set_rng_state(load_rng_state(str(path)))
    assert _draws() == expected
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    torch.load(path, weights_only=True)  # no extra globals needed


def test_previous_rng_format_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "rng_state.pth"
    torch.save(get_rng_state(), path)  # format 1: numpy's get_state() tuple pickled as is
    assert "numpy.ndarray" in torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    expected = _draws()
    set_rng_state(load_rng_state(str(path)))
    assert _draws() == expected


def test_code_in_a_state_file_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    for name in ("optimizer.pt", "rng_state.pth"):
        path = tmp_path / name
        torch.save({"state": {}, "param_groups": [], "x": RunsCode(marker)}, path)
        loader = load_rng_state if name.startswith("rng") else load_plain
        with pytest.raises(CheckpointStateError, match=rf"{name}: not plain tensors and numbers .*builtins\.exec"):
            loader(str(path))
        assert not marker.exists()
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointStateError, match="garbage.pt"):
        load_plain(str(tmp_path / "garbage.pt"))
    torch.save({"python": 1}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointStateError, match="not an RNG state"):
        load_rng_state(str(tmp_path / "partial.pth"))


def test_deepspeed_state_loads_as_plain_data(tmp_path: Path) -> None:
    """What DeepSpeed writes into global_step*/ (its loss scaler, stage enum and slice records) loads with
    weights_only=True through the wrapped engine; its own engine would unpickle anything, code included."""
    pytest.importorskip("deepspeed")
    from deepspeed.runtime.checkpoint_engine import TorchCheckpointEngine
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    class Engine:  # the attribute deepspeed.DeepSpeedEngine.load_checkpoint reads its files through
        checkpoint_engine = TorchCheckpointEngine()

    engine = Engine()
    state = {"optimizer_state_dict": {"loss_scaler": LossScaler(1.0), "dynamic": DynamicLossScaler(2.0 ** 16, 2, 1, 2, False),
                                      "zero_stage": ZeroStageEnum.gradients, "partition_count": [2],
                                      "param_slice_mappings": [{"w": fragment_address(numel=4, start=0)}],
                                      "base_optimizer_state": {"state": {0: {"exp_avg": torch.ones(2)}}}},
             "ds_version": "0.19.0", "param_shapes": [{"w": torch.Size([2, 2])}]}
    engine.checkpoint_engine.save(state, str(tmp_path / "zero_pp_rank_0_mp_rank_00_optim_states.pt"))
    safe_deepspeed_loads(engine)
    safe_deepspeed_loads(engine)  # idempotent: wrapped once
    assert isinstance(engine.checkpoint_engine, SafeCheckpointEngine)
    assert not isinstance(engine.checkpoint_engine._inner, SafeCheckpointEngine)
    back = engine.checkpoint_engine.load(str(tmp_path / "zero_pp_rank_0_mp_rank_00_optim_states.pt"),
                                         map_location=lambda storage, loc: storage)
    opt = back["optimizer_state_dict"]
    assert opt["zero_stage"] is ZeroStageEnum.gradients and opt["loss_scaler"].cur_scale == 1.0
    assert opt["param_slice_mappings"][0]["w"] == fragment_address(numel=4, start=0)
    assert torch.equal(opt["base_optimizer_state"]["state"][0]["exp_avg"], torch.ones(2))
    assert back["param_shapes"][0]["w"] == torch.Size([2, 2])

    marker = tmp_path / "ran.txt"
    engine.checkpoint_engine.save({"x": RunsCode(marker)}, str(tmp_path / "mp_rank_00_model_states.pt"))
    with pytest.raises(CheckpointStateError, match=r"mp_rank_00_model_states.pt: not plain tensors and numbers \(it asks for exec\)"):
        engine.checkpoint_engine.load(str(tmp_path / "mp_rank_00_model_states.pt"))
    assert not marker.exists()
    assert engine.checkpoint_engine.name == "TorchCheckpointEngine"  # the rest is DeepSpeed's engine


@pytest.mark.slow
@pytest.mark.real_tokenizer
def test_resume_refuses_code_and_reads_the_old_format(tmp_path: Path, tokenizers_root: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """A real checkpoint: its state files load with weights_only=True; a tampered optimizer.pt gives one error line
    and exit 2 without running its code; an old-format rng_state.pth resumes and continues the run."""
    from vlmref.cli.main import main

    model_type = "yi-vl-6b-chat"
    base = tiny_checkpoint(tmp_path / "tiny", model_type)
    data = memorise_jsonl(tmp_path)
    common = ["sft", "--model_type", model_type, "--model_id_or_path", str(base), "--dataset", str(data),
              "--disable_tqdm", "true", "--gradient_accumulation_steps", "1", "--logging_steps", "1",
              "--gradient_checkpointing", "false", "--save_only_model", "false", "--eval_steps", "100"]
    assert main([*common, "--output_dir", str(tmp_path / "a"), "--max_steps", "2", "--save_steps", "1"]) == 0
    ckpt = next((tmp_path / "a").glob(f"{model_type}/*/checkpoint-1"))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        assert torch.serialization.get_unsafe_globals_in_checkpoint(str(ckpt / name)) == [], name
    mask = current_umask()  # peft/transformers write 0600 files; the checkpoint gets the umask's modes
    assert stat.S_IMODE(ckpt.stat().st_mode) == 0o777 & ~mask
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in ckpt.iterdir()} == {
        p.name: 0o666 & ~mask for p in ckpt.iterdir()}
    capsys.readouterr()

    old = tmp_path / "old-ckpt"
    old.mkdir()
    for f in ckpt.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    rng = load_rng_state(str(ckpt / "rng_state.pth"))
    torch.save(rng, old / "rng_state.pth")  # the previous format: numpy objects pickled

    bad = tmp_path / "bad-ckpt"
    bad.mkdir()
    for f in ckpt.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    marker = tmp_path / "ran.txt"
    torch.save({"state": {}, "param_groups": [], "x": RunsCode(marker)}, bad / "optimizer.pt")
    code = main([*common, "--output_dir", str(tmp_path / "b"), "--max_steps", "2", "--resume_from_checkpoint",
                 str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        next(line for line in err.splitlines() if "optimizer.pt: not plain tensors" in line)]
    assert "Traceback" not in err

    assert main([*common, "--output_dir", str(tmp_path / "c"), "--max_steps", "2", "--resume_from_checkpoint",
                 str(old)]) == 0
    resumed = read_jsonl(next((tmp_path / "c").glob(f"{model_type}/*/logging.jsonl")))
    first = read_jsonl(next((tmp_path / "a").glob(f"{model_type}/*/logging.jsonl")))
    assert [(r["step"], r["loss"]) for r in train_records(resumed)] == [
        (r["step"], r["loss"]) for r in train_records(first) if r["step"] == 2]
    assert json.loads((old / "trainer_state.json").read_text())["global_step"] == 1
