"""The KV cache in ``generate()`` for every model type, whichever keyword transformers hands it under.

A cache that is silently dropped (transformers 5.24 renamed ``past_key_values`` to ``cache``) makes each decode step
see only its own token: greedy output then differs from a run without the cache, a step's logits differ from the
same position in one full forward pass, and left-padded batches break. Each is checked here on a tiny model, with the
real tokenizer when ../shared has it and the stand-in otherwise (the cache does not depend on the tokenizer).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vlmref.datasets.collate import DataCollator
from vlmref.models.kv_cache import CACHE_KWARG, cache_output, output_cache, takes_cache
from vlmref.models.loader import get_model_tokenizer
from vlmref.models.model_types import MODELS
from vlmref.models.tiny import create_tiny_checkpoint
from vlmref.templates import get_template

MODEL_TYPES = MODELS.names()
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("img")
    paths = []
    for name, size, colour in (("red.png", (64, 48), (200, 30, 30)), ("blue.png", (40, 56), (20, 60, 210))):
        Image.new("RGB", size, colour).save(folder / name)
        paths.append(str(folder / name))
    return paths


def _tiny(model_type: str, folder: Path):
    out = create_tiny_checkpoint(model_type, folder / model_type)
    model, tokenizer = get_model_tokenizer(model_type, model_id_or_path=str(out))
    meta = MODELS.get(model_type)
    return model, tokenizer, get_template(meta.template, tokenizer, **meta.media_options)


def _prompts(template, images: list[str]) -> list[dict]:
    """Two generation prompts of different lengths, one image each (every family's rules allow that)."""
    queries = ["Describe.", "What colour is the large shape in this picture, and where is it?"]
    return [template.encode({"query": q, "response": None, "images": [im]}) for q, im in zip(queries, images, strict=True)]


def _generate(model, batch: dict, **kwargs):
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    pad = model.generation_config.pad_token_id
    with torch.no_grad():
        return model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                              pad_token_id=0 if pad is None else pad, **kwargs)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_cached_generation_equals_uncached_and_batch_equals_rows(model_type: str, images, tmp_path: Path) -> None:
    model, tokenizer, template = _tiny(model_type, tmp_path)
    prompts = _prompts(template, images)
    collate = DataCollator(model_type, tokenizer, padding_side="left")
    batch = collate(prompts)
    width = batch["input_ids"].shape[1]
    assert int(batch["attention_mask"].sum(1).min()) < width  # the shorter prompt is left-padded

    cached = _generate(model, batch, output_logits=True, return_dict_in_generate=True)
    uncached = _generate(model, batch, use_cache=False)
    assert torch.equal(cached.sequences, uncached), "greedy with the KV cache differs from greedy without it"
    kept = output_cache(cached)  # generate() really decoded from the cache: it holds every position but the last
    assert kept is not None and kept.get_seq_length() == width + NEW_TOKENS - 1

    # each cached decode step's logits = one full forward over prompt + generated tokens (teacher forcing)
    full = {**batch, "input_ids": cached.sequences,
            "attention_mask": torch.cat([batch["attention_mask"], torch.ones(2, NEW_TOKENS, dtype=torch.long)], 1)}
    for key in ("token_type_ids", "im_mask"):  # per-position extras: generated tokens are text
        if key in batch:
            full[key] = torch.cat([batch[key], batch[key].new_zeros(2, NEW_TOKENS)], 1)
    with torch.no_grad():
        reference = model(**{k: v for k, v in full.items() if k != "labels"}, use_cache=False).logits
    steps = torch.stack(cached.logits, 1)  # (B, NEW_TOKENS, vocab)
    expected = reference[:, width - 1 : width - 1 + NEW_TOKENS, : steps.shape[-1]].to(steps.dtype)
    assert torch.allclose(steps, expected, atol=1e-3, rtol=1e-3), (steps - expected).abs().max()

    for row, prompt in enumerate(prompts):
        alone = _generate(model, collate([prompt]))
        assert alone[0, -NEW_TOKENS:].tolist() == cached.sequences[row, -NEW_TOKENS:].tolist(), f"row {row}"


def test_takes_cache_accepts_both_names_and_refuses_two_caches() -> None:
    seen = []

    @takes_cache
    def forward(input_ids=None, cache=None, **kwargs):
        seen.append((cache, kwargs))

    first, second = object(), object()
    forward(1, past_key_values=first)
    forward(1, cache=first)
    forward(1, cache=first, past_key_values=None)
    assert [c for c, _ in seen] == [first, first, first] and all(k == {} for _, k in seen)
    with pytest.raises(TypeError, match="not both"):
        forward(1, cache=first, past_key_values=second)


def test_cache_output_uses_the_installed_field() -> None:
    from transformers.modeling_outputs import CausalLMOutputWithPast

    marker = object()
    out = CausalLMOutputWithPast(logits=torch.zeros(1), **cache_output(marker))
    assert output_cache(out) is marker and getattr(out, CACHE_KWARG) is marker
    assert CACHE_KWARG in CausalLMOutputWithPast.__dataclass_fields__
