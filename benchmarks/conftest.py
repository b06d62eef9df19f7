"""Shared benchmark bodies for the tiny-architecture benchmarks (`arch_bench` fixture)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch


def forward(benchmark, model, batch: dict, model_type: str, batch_size: int):
    """Time ``model(**batch)`` without gradients (5 rounds after one warm-up); returns the output."""
    benchmark.extra_info.update(model_type=model_type, batch_size=batch_size, positions=int(batch["input_ids"].shape[1]))

    def run():
        with torch.no_grad():
            return model(**batch, use_cache=False)

    out = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    assert torch.isfinite(out.loss)
    return out


def train_step(benchmark, model, batch: dict):
    """Time one forward + backward (3 rounds after one warm-up); the model is put back in eval mode."""
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        return loss

    try:
        loss = benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    finally:
        model.eval()
    assert torch.isfinite(loss)
    return loss


def image_features(benchmark, model, pixel_values):
    """Time ``model.get_image_features(pixel_values)`` (5 rounds after one warm-up); returns the features."""

    def run():
        with torch.no_grad():
            return model.get_image_features(pixel_values)

    return benchmark.pedantic(run, rounds=5, warmup_rounds=1)


@pytest.fixture(scope="session")
def arch_bench() -> SimpleNamespace:
    return SimpleNamespace(forward=forward, train_step=train_step, image_features=image_features)


def pytest_benchmark_update_json(config, benchmarks, output_json) -> None:
    """The bench JSON records the software that made it (pytest-benchmark keeps only the machine and the commit)."""
    from vlmref.bench.env import result_versions

    output_json["vlmref_versions"] = result_versions()
