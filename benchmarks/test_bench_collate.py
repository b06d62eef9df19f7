"""Image preprocessing per family (one 640x480 image) and collation of a batch of 4 (pytest-benchmark):
`nox -s bench` or `pytest benchmarks --benchmark-only`. The collation benchmark includes loading the golden images
from disk and processing them; encoding is done once, outside the timed call (byte-level stand-in tokenizer: the
token ids do not change the work). images/s = 1 / mean for the first, batches/s = 1 / mean for the second."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlmref.datasets.collate import DataCollator
from vlmref.datasets.images import load_image
from vlmref.datasets.processors import get_image_processor
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template
from vlmref.testing.golden import GOLDEN_IMAGES, tiny_tokenizer_for

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
# one model type per image processor (all LLaVA-NeXT types share one)
FAMILIES = [
    "cogvlm-17b-instruct",
    "qwen-vl-chat",
    "internlm-xcomposer2-7b-chat",
    "internlm-xcomposer2_5-7b-chat",
    "yi-vl-6b-chat",
    "llava1d6-mistral-7b-instruct",
]


@pytest.mark.parametrize("model_type", FAMILIES)
def test_preprocess_one_image(benchmark, model_type: str) -> None:
    image = load_image("images/red_640x480.png", base_dir=str(GOLDEN))
    processor = get_image_processor(model_type)
    processor([image])  # warm-up: the LLaVA-NeXT processor imports transformers on first use
    benchmark.extra_info.update(model_type=model_type, processor=type(processor).__name__, image="640x480")
    out = benchmark(processor, [image])
    assert len(out["pixel_values"]) == 1


@pytest.mark.parametrize("model_type", FAMILIES)
def test_collate_batch_of_4(benchmark, model_type: str) -> None:
    meta = MODELS.get(model_type)
    case = json.loads((GOLDEN / "templates" / meta.template / "one_image.json").read_text())
    tokenizer = tiny_tokenizer_for(case)
    template = get_template(meta.template, tokenizer, media_root=str(GOLDEN), **meta.media_options)
    example = case["input"]["example"]
    refs = [*GOLDEN_IMAGES, next(iter(GOLDEN_IMAGES))]  # 640x480, 336x336, 300x900, 640x480
    batch = [template.encode({**example, "images": [ref]}) for ref in refs]
    collator = DataCollator(model_type, tokenizer, media_root=str(GOLDEN))
    collator(batch)  # warm-up
    benchmark.extra_info.update(model_type=model_type, batch_size=len(batch), images=refs)
    out = benchmark(collator, batch)
    assert out["images_per_sample"].tolist() == [1, 1, 1, 1]
