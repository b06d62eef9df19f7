"""Tiny CogVLM forward passes (pytest-benchmark): `pytest benchmarks/test_bench_arch_cogvlm.py --benchmark-only`.

The tiny model keeps the real geometry (490 px image -> 1227 image positions, vocabulary 32000) and shrinks widths
(hidden 64, 2 layers; vision width 32, 2 layers), so these time the routing, masking and logits work of the
architecture at a real sequence length, not the matrix multiplies of the 17B model. Inputs come from the real
template + collator (byte-level stand-in tokenizer). One sample is ~1250 positions; batches/s = 1 / mean.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vlmref.datasets.collate import DataCollator
from vlmref.models.cogvlm import SPEC, CogVLMForCausalLM
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

MODEL_TYPE = "cogvlm-17b-instruct"
SPECIALS = {"<unk>": 0, "<s>": 1, "</s>": 2}  # vicuna's (golden/templates/cogvlm meta.special_tokens)


def _batch(size: int) -> dict:
    tokenizer = TinyTokenizer(SPECIALS, bos="<s>", eos="</s>", pad="<unk>", byte_offset=300)
    meta = MODELS.get(MODEL_TYPE)
    template = get_template(meta.template, tokenizer, **meta.media_options)
    rng = np.random.default_rng(0)
    samples = [
        template.encode({
            "query": "Describe the picture in detail.",
            "response": "A red square on a grey background." * (1 + i),
            "images": [Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), "RGB")],
        })
        for i in range(size)
    ]
    return DataCollator(MODEL_TYPE, tokenizer)(samples)


@pytest.fixture(scope="module")
def model() -> CogVLMForCausalLM:
    torch.manual_seed(0)
    return CogVLMForCausalLM(SPEC.build_config(tiny=True)).eval()


@pytest.mark.parametrize("batch_size", [1, 2])
def test_tiny_forward_with_image(benchmark, arch_bench, model, batch_size: int) -> None:
    arch_bench.forward(benchmark, model, _batch(batch_size), MODEL_TYPE, batch_size)


def test_tiny_train_step(benchmark, arch_bench, model) -> None:
    arch_bench.train_step(benchmark, model, _batch(1))


def test_tiny_vision_tower(benchmark, arch_bench, model) -> None:
    feats = arch_bench.image_features(benchmark, model, _batch(1)["pixel_values"])
    assert feats[0].shape == (1227, 64)
