"""Tiny Qwen-VL-Chat forward passes (pytest-benchmark): `pytest benchmarks/test_bench_arch_qwen_vl.py --benchmark-only`.

The tiny model keeps the real geometry (448 px image -> 1024 patches -> 256 resampler queries, 258 positions per image
with <img>/</img>; vocabulary 151936) and shrinks widths (hidden 64, 2 layers; vision width 32, 2 layers), so these
time the image placement, resampler, masking and logits work at a real sequence length, not the matrix multiplies of
the 9.6B model. Inputs come from the real template + collator (byte-level stand-in tokenizer, golden images); one
sample with one image is ~340 positions; batches/s = 1 / mean.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vlmref.datasets.collate import DataCollator
from vlmref.models.qwen_vl import SPEC, QWenVLForCausalLM
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

MODEL_TYPE = "qwen-vl-chat"
GOLDEN = Path(__file__).resolve().parent.parent / "golden"
# Qwen's ids (golden/templates/qwen-vl meta.special_tokens)
SPECIALS = {"<|im_start|>": 151644, "<|im_end|>": 151645, "<img>": 151857, "</img>": 151858, "<imgpad>": 151859}
IMAGES = ["images/red_640x480.png", "images/blue_336x336.png", "images/green_300x900.png"]


def _batch(size: int) -> dict:
    tokenizer = TinyTokenizer(SPECIALS, eos="<|im_end|>", pad="<|im_end|>", byte_offset=300)
    template = get_template("qwen-vl", tokenizer, media_root=str(GOLDEN))
    samples = [
        template.encode({"query": "Describe the picture in detail.", "response": "A coloured rectangle." * (1 + i),
                         "images": [IMAGES[i % len(IMAGES)]]})
        for i in range(size)
    ]
    return DataCollator(MODEL_TYPE, tokenizer, media_root=str(GOLDEN))(samples)


@pytest.fixture(scope="module")
def model() -> QWenVLForCausalLM:
    torch.manual_seed(0)
    return QWenVLForCausalLM(SPEC.build_config(tiny=True)).eval()


@pytest.mark.parametrize("batch_size", [1, 2])
def test_tiny_forward_with_image(benchmark, arch_bench, model, batch_size: int) -> None:
    arch_bench.forward(benchmark, model, _batch(batch_size), MODEL_TYPE, batch_size)


def test_tiny_train_step(benchmark, arch_bench, model) -> None:
    arch_bench.train_step(benchmark, model, _batch(1))


def test_tiny_vision_tower_and_resampler(benchmark, arch_bench, model) -> None:
    feats = arch_bench.image_features(benchmark, model, _batch(1)["pixel_values"])
    assert feats[0].shape == (256, 64)


def test_tiny_generate_3_tokens(benchmark, model) -> None:
    tokenizer = TinyTokenizer(SPECIALS, eos="<|im_end|>", pad="<|im_end|>", byte_offset=300)
    template = get_template("qwen-vl", tokenizer, media_root=str(GOLDEN))
    prompts = [template.encode({"query": q, "images": [IMAGES[i]]}) for i, q in enumerate(["Describe.", "What is it?"])]
    batch = DataCollator(MODEL_TYPE, tokenizer, media_root=str(GOLDEN), padding_side="left")(prompts)

    def run():
        with torch.no_grad():
            return model.generate(**batch, max_new_tokens=3, do_sample=False)

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert out.shape[1] == batch["input_ids"].shape[1] + 3
