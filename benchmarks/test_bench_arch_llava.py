"""Tiny-model forward time for the LLaVA-style families (pytest-benchmark): `pytest benchmarks --benchmark-only`.

One sample with one image through the real template and collator (byte-level stand-in tokenizer with the real special
ids), then ``model(**batch)`` under ``torch.no_grad``: LLaVA-NeXT (llava-mistral, 336x336 image -> 3 CLIP tiles,
1176 image positions) and Yi-VL (448 px, 1024 image positions). Widths are tiny (hidden 64, 2 layers, vision 32 x 2
layers), the vocabularies real, so the lm_head and cross-entropy dominate. samples/s = 1 / mean.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from stand_in import golden_specials

from vlmref.datasets.collate import DataCollator
from vlmref.models.arch import get_arch
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

TYPES = ["llava1d6-mistral-7b-instruct", "llama3-llava-next-8b", "yi-vl-6b-chat"]


def _batch(model_type: str):
    meta = MODELS.get(model_type)
    ids, bos, eos, pad = golden_specials(meta.template)  # tests/ is on pytest's pythonpath (pyproject)
    tok = TinyTokenizer(ids, bos=bos, eos=eos, pad=pad, byte_offset=300)
    y, x = np.mgrid[0:336, 0:336]
    image = Image.fromarray(np.stack([x % 256, y % 256, (x ^ y) % 256], -1).astype(np.uint8))
    sample = get_template(meta.template, tok, **meta.media_options).encode(
        {"query": "Describe the picture.", "response": "A textured square.", "images": [image]})
    return DataCollator(model_type, tok)([sample])


@pytest.mark.parametrize("model_type", TYPES)
def test_tiny_forward_one_image(benchmark, model_type: str) -> None:
    spec = get_arch(model_type)
    torch.manual_seed(0)
    model = spec.model_class(spec.build_config(tiny=True)).eval()
    batch = _batch(model_type)

    def forward():
        with torch.no_grad():
            return model(**batch)

    benchmark.extra_info.update(model_type=model_type, positions=int(batch["input_ids"].shape[1]))
    out = benchmark.pedantic(forward, rounds=3, iterations=1, warmup_rounds=1)
    assert torch.isfinite(out.loss)
