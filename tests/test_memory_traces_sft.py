"""The memory predictor traces the code that trains: for every model type, the simulated workload (``vlmref memory``
/ ``vlmref bench``) and a real ``vlmref sft`` run build the same trainable parameters and the same optimizer
parameter groups (issue 14 item 3, issue 15 item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sft_worker import memorise_jsonl, tiny_checkpoint

from vlmref.memory.inputs import build_batch
from vlmref.memory.scenario import MemoryScenario
from vlmref.memory.setup import build_model, sft_arguments
from vlmref.memory.workload import optimizer_groups, run_sft
from vlmref.models.model_types import MODELS

# one model type of each family in the default selection (and a full run); every other model type and target in slow
FAST = [("cogvlm-17b-instruct", "lora", ()), ("qwen-vl-chat", "lora", ()), ("internlm-xcomposer2-7b-chat", "lora", ()),
        ("yi-vl-6b-chat", "lora", ()), ("llava1d6-mistral-7b-instruct", "full", ())]
SLOW = [(m, "lora", ()) for m in MODELS.names() if (m, "lora", ()) not in FAST] + [
    ("qwen-vl-chat", "full", ()), ("yi-vl-6b-chat", "lora", ("ALL",)), ("internlm-xcomposer2-7b-chat", "lora", ("ALL",))]
CASES = FAST + [pytest.param(*case, marks=pytest.mark.slow) for case in SLOW]


def _trainable(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("traced_sft")


@pytest.mark.real_tokenizer
@pytest.mark.parametrize(("model_type", "sft_type", "targets"), CASES)
def test_memory_workload_and_sft_build_the_same_optimizer(model_type: str, sft_type: str, targets: tuple[str, ...],
                                                         tiny_root: Path, tokenizers_root: Path,
                                                         tmp_path: Path) -> None:
    from vlmref.llm.sft import SftRun
    from vlmref.llm.sft_args import parse_sft_args

    scenario = MemoryScenario(model_type, "sft", sft_type=sft_type, dtype="fp32", text_tokens=8,
                              lora_target_modules=targets or ("DEFAULT",), image_size=(56, 56))
    # the memory side: the model the trace prepares, the workload's optimizer (one real step on CPU)
    model = build_model(scenario, device="cpu", tiny=True)
    stats = run_sft(model, build_batch(scenario), scenario, lambda phase: None, steps=1)
    traced_groups = stats.optimizer_groups
    # the sft side: a real one-step run on a tiny checkpoint, with the scenario's own flags
    base = tiny_checkpoint(tiny_root, model_type)
    args = parse_sft_args([*scenario.sft_flags(), "--dataset", str(memorise_jsonl(tmp_path)), "--model_id_or_path", str(base),
                           "--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--disable_tqdm",
                           "--evaluation_strategy", "no", "--save_strategy", "no"], log=lambda m: None)
    run = SftRun(args)
    run.run()
    assert _trainable(run.model) == _trainable(model) and _trainable(model)
    assert optimizer_groups(run.model, run.optimizer) == traced_groups
    # HF Trainer's groups: weight decay 0.1 on the weights, none on biases and norm weights (LoRA: weights only)
    assert [g["weight_decay"] for g in traced_groups] == ([0.1, 0.0] if sft_type == "full" else [0.1])
    assert {g["lr"] for g in traced_groups} == {sft_arguments(scenario).learning_rate}
