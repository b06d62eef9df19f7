"""The memory workload as throughput benchmarks (pytest-benchmark): `nox -s bench -- -k memory`.

* ``test_tiny_lora_train_step``: one LoRA optimizer step (forward, backward, clip, AdamW) of each family's tiny model
  on CPU, fp32, the scenario batch of ``vlmref memory`` (one 640x480 image + 32 text positions) - the same code
  ``vlmref bench`` times on a GPU. tokens/s in ``extra_info``.
* ``test_simulate_full_size``: how long ``vlmref memory`` takes to trace one full-size scenario on this machine
  (the whole documented table is ``vlmref memory --documented``, timed in its output).
"""

from __future__ import annotations

import pytest

from vlmref.memory import MemoryScenario
from vlmref.memory.inputs import batch_positions, build_batch
from vlmref.memory.setup import build_model
from vlmref.memory.simulate import simulate
from vlmref.memory.workload import run_sft

FAMILIES = ["cogvlm-17b-instruct", "qwen-vl-chat", "internlm-xcomposer2-7b-chat", "internlm-xcomposer2_5-7b-chat",
            "yi-vl-6b-chat", "llava1d6-mistral-7b-instruct"]


@pytest.mark.parametrize("model_type", FAMILIES)
def test_tiny_lora_train_step(benchmark, model_type: str) -> None:
    scenario = MemoryScenario(model_type, "sft", dtype="fp32", text_tokens=32)
    model = build_model(scenario, device="cpu", tiny=True)
    batch = build_batch(scenario)

    def step():
        return run_sft(model, batch, scenario, lambda name: None, steps=1)

    stats = benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(model_type=model_type, positions=batch_positions(batch),
                                tokens_per_second=round(stats.rate("tokens", skip_first=False), 1))


def test_simulate_full_size(benchmark) -> None:
    scenario = MemoryScenario("qwen-vl-chat", "sft", text_tokens=64)
    est = benchmark.pedantic(lambda: simulate(scenario), rounds=1, iterations=1)
    benchmark.extra_info.update(scenario=scenario.label(), predicted_gib=round(est.predicted_gib, 2),
                                peak_allocated_gib=round(est.peak_allocated_gib, 2))
