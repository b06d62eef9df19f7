"""Training throughput of ``vlmref sft`` on a tiny Qwen-VL (pytest-benchmark): `nox -s bench -- -k sft`.

Each case is one short run (6 optimizer steps, batch 1, gradient accumulation 2, no gradient checkpointing, fp32,
CPU). The benchmark time is the whole run (start-up included); the figure that matters is in ``extra_info``:
``tokens_per_second`` = input positions (image positions included, all ranks) per second of training-step time,
averaged over steps 2-6 (step 1 warms up), read from the run's ``logging.jsonl``.

* ``lora`` vs ``full``: one process (``python -m vlmref.cli.sft``), no DeepSpeed.
* ``zero2[1]`` vs ``zero2[2]``: full fine-tuning with ``--deepspeed default-zero2`` through ``NPROC_PER_NODE=1`` / ``2``
  (torchrun, gloo).

Every run is a subprocess with ``OMP_NUM_THREADS=1`` (torchrun's default per process), so the cases compare like with
like: one core per process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sft_worker import free_port, read_jsonl, run_cli, run_dirs, tiny_checkpoint, train_records

from vlmref.models.loader import shared_tokenizer_folder

MODEL_TYPE = "qwen-vl-chat"
STEPS = 6


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shared_tokenizer_folder(MODEL_TYPE) is None:
        pytest.skip("needs the real Qwen tokenizer files (../shared/tokenizers or VLMREF_TOKENIZERS_DIR)")
    return tiny_checkpoint(tmp_path_factory.mktemp("bench_sft"), MODEL_TYPE)


def _argv(base: Path, out: Path, sft_type: str, *extra: str) -> list[str]:
    return ["--model_type", MODEL_TYPE, "--model_id_or_path", str(base), "--dataset", "coco-en-2-mini-sample#16",
            "--sft_type", sft_type, "--max_steps", str(STEPS), "--gradient_accumulation_steps", "2",
            "--logging_steps", "1", "--eval_steps", "1000", "--save_steps", "1000", "--gradient_checkpointing", "false",
            "--output_dir", str(out), "--disable_tqdm", "true", *extra]


def _tokens_per_second(out: Path) -> dict[str, float]:
    (run,) = run_dirs(out, MODEL_TYPE)
    train = train_records(read_jsonl(run / "logging.jsonl"))[1:]
    return {"tokens_per_second": round(sum(r["tokens_per_second"] for r in train) / len(train), 2),
            "samples_per_second": round(sum(r["samples_per_second"] for r in train) / len(train), 3),
            "peak_memory_gib": train[-1]["memory"]["per_device"]}


@pytest.mark.parametrize("sft_type", ["lora", "full"])
def test_bench_sft_single_process(benchmark, base: Path, tmp_path: Path, sft_type: str) -> None:
    out = tmp_path / "out"

    def run() -> None:
        done = run_cli(_argv(base, out, sft_type))
        assert done.returncode == 0, done.stderr[-3000:]

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(_tokens_per_second(out))


@pytest.mark.parametrize("nproc", [1, 2])
def test_bench_sft_zero2(benchmark, base: Path, tmp_path: Path, nproc: int) -> None:
    out = tmp_path / "out"

    def run() -> None:
        done = run_cli(_argv(base, out, "full", "--deepspeed", "default-zero2"), NPROC_PER_NODE=str(nproc),
                       MASTER_PORT=str(free_port()))
        assert done.returncode == 0, done.stderr[-3000:]

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(_tokens_per_second(out))
    benchmark.extra_info["processes"] = nproc
