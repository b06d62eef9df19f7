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


def test_train_step_phases_and_no_host_reads() -> None:
    """The hooks the trace labels its peak with, in order; without host reads only ``samples`` is filled, and the
    parameters still move exactly as with them."""
    import torch

    from vlmref.training.step import train_step

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.head = torch.nn.Embedding(11, 4), torch.nn.Linear(4, 11)

        def forward(self, input_ids, attention_mask, labels):
            logits = self.head(self.emb(input_ids))
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1))
            return type("Out", (), {"loss": loss, "logits": logits})()

    batch = {"input_ids": torch.tensor([[1, 2, 3, 4]]), "attention_mask": torch.ones(1, 4, dtype=torch.long),
             "labels": torch.tensor([[-100, 2, 3, 4]])}
    results, weights = [], []
    for host_reads in (True, False):
        torch.manual_seed(0)
        model = Tiny()
        opt = torch.optim.AdamW(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        phases: list[str] = []
        results.append(train_step(model, [batch, batch], optimizer=opt, scheduler=sched, max_grad_norm=0.5,
                                  on_phase=phases.append, host_reads=host_reads))
        weights.append(model.head.weight.detach().clone())
        assert phases == ["forward", "backward", "forward", "backward", "optimizer"]
    read, unread = results
    assert read.loss > 0 and read.total == 6 and read.tokens == 8 and read.grad_norm > 0
    assert (unread.loss, unread.correct, unread.total, unread.tokens, unread.grad_norm, unread.samples) == (
        None, None, None, None, None, 2)
    assert torch.equal(weights[0], weights[1])
