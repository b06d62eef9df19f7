"""Tiny InternLM-XComposer2 / IXC-2.5 forward passes on CPU (pytest-benchmark): `nox -s bench` or
`pytest benchmarks/test_bench_arch_internlm_xcomposer2.py --benchmark-only`.

Batch of 2 from the real template + collator (byte-level stand-in tokenizer, no system prompt): one row with the
golden 640x480 image (XComposer2: 256 image positions; IXC-2.5: 2x2 tiles -> 2061), one text-only row. The timed call
is ``model(**batch)`` under ``torch.no_grad()`` with ``logits_to_keep=1`` (the vision tower, the projector and the
decoder; the 92544-wide head on the last position only). ``extra_info`` records the padded sequence length.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from stand_in import golden_specials

from vlmref.datasets.collate import DataCollator
from vlmref.models.arch import get_arch
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@pytest.mark.parametrize("model_type", ["internlm-xcomposer2-7b-chat", "internlm-xcomposer2_5-7b-chat"])
def test_tiny_forward(benchmark, model_type: str) -> None:
    meta = MODELS.get(model_type)
    ids, bos, eos, pad = golden_specials(meta.template)
    tokenizer = TinyTokenizer(ids, bos=bos, eos=eos, pad=pad, byte_offset=300)
    template = get_template(meta.template, tokenizer, media_root=str(GOLDEN), **meta.media_options)
    samples = [{"query": "<img>images/red_640x480.png</img>Describe it.", "response": "Red.", "system": ""},
               {"query": "Hello!", "response": "Hi.", "system": ""}]
    batch = DataCollator(model_type, tokenizer, media_root=str(GOLDEN))([template.encode(s) for s in samples])
    batch.pop("labels")
    spec = get_arch(model_type)
    torch.manual_seed(0)
    model = spec.model_class(spec.build_config(tiny=True)).eval()

    def run():
        with torch.no_grad():
            return model(**batch, logits_to_keep=1)

    run()  # warm-up
    benchmark.extra_info.update(model_type=model_type, batch=2, seq_len=int(batch["input_ids"].shape[1]),
                                image_positions=int(batch["im_mask"].sum()))
    out = benchmark(run)
    assert out.logits.shape == (2, 1, 92544)
