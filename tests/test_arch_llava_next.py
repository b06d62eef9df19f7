"""LLaVA-NeXT (llava-hf v1.6 Mistral/34B, lmms-lab Llama-3-8B / Qwen1.5-72B/110B) architecture checks.

Full size on meta against golden/arch/<model_type>.json (upstream checkpoint names mapped with transformers' own
conversion and, for lmms-lab, ``ORIGINAL_KEY_MAPPING``); tiny models fed through the real templates and collator.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from stand_in import golden_specials

from vlmref.datasets.collate import DataCollator
from vlmref.models.arch import get_arch
from vlmref.models.llava_next import COMPONENTS, LlavaNextConfig, LlavaNextForCausalLM, adapt_to_tokenizer
from vlmref.models.llava_next.config import LLAVA_NEXT_72B, is_original_layout
from vlmref.models.llava_next.keys import ORIGINAL_KEY_MAPPING, hf_to_model, original_to_hf_key
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "arch"
LLAVA_HF = ["llava1d6-mistral-7b-instruct", "llava1d6-yi-34b-instruct"]
ORIGINAL = ["llama3-llava-next-8b", "llava-next-72b", "llava-next-110b"]
ALL = LLAVA_HF + ORIGINAL


def golden(model_type: str) -> dict:
    return json.loads((GOLDEN / f"{get_arch(model_type).upstream_keys}.json").read_text())


def on_meta(model_type: str) -> LlavaNextForCausalLM:
    spec = get_arch(model_type)
    with torch.device("meta"):
        return spec.model_class(spec.build_config())


@cache
def tiny(model_type: str) -> LlavaNextForCausalLM:
    spec = get_arch(model_type)
    torch.manual_seed(0)
    return spec.model_class(spec.build_config(tiny=True)).eval()


def tokenizer(model_type: str) -> TinyTokenizer:
    ids, bos, eos, pad = golden_specials(MODELS.get(model_type).template)
    return TinyTokenizer(ids, bos=bos, eos=eos, pad=pad, byte_offset=300)


def img(w: int, h: int, seed: int = 0) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([(x * 7 + seed) % 256, (y * 5) % 256, (x ^ y) % 256], -1).astype(np.uint8))


def encode(model_type: str, examples: list[dict], padding_side: str = "right"):
    tok = tokenizer(model_type)
    meta = MODELS.get(model_type)
    template = get_template(meta.template, tok, **meta.media_options)
    samples = [template.encode(ex) for ex in examples]
    return samples, DataCollator(model_type, tok, padding_side=padding_side)(samples)


def component_counts(model, components=COMPONENTS) -> dict[str, int]:
    counts = {c: 0 for c in components}
    for name, p in model.named_parameters():
        owners = [c for c, ps in components.items() if any(name == q or name.startswith(q + ".") for q in ps)]
        assert len(owners) == 1, (name, owners)
        counts[owners[0]] += p.numel()
    return {**counts, "total": sum(counts.values())}


# ---- full size: upstream keys, shapes, counts ------------------------------------------------------------------------
@pytest.mark.golden
@pytest.mark.parametrize("model_type", ALL)
def test_upstream_keys_map_bijectively_onto_the_model(model_type: str) -> None:
    model, data = on_meta(model_type), golden(model_type)
    key_mapping = ORIGINAL_KEY_MAPPING if model_type in ORIGINAL else None
    mapped = hf_to_model(model, data["keys"], key_mapping)
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert len(set(mapped.values())) == len(mapped), "two upstream keys map to one model key"
    assert set(mapped.values()) == set(own), (set(own) - set(mapped.values()), set(mapped.values()) - set(own))
    assert all(own[mapped[k]] == shape for k, shape in data["keys"].items())


@pytest.mark.golden
@pytest.mark.parametrize("model_type", ALL)
def test_full_size_component_counts_and_published_total(model_type: str) -> None:
    counts, data = component_counts(on_meta(model_type)), golden(model_type)
    assert counts == data["param_counts"]
    published = data["published_total"]["value"]
    assert abs(counts["total"] - published) / published < 0.01


def test_original_key_mapping_is_the_upstream_conversion() -> None:
    assert original_to_hf_key("model.layers.3.self_attn.q_proj.bias") == "language_model.model.layers.3.self_attn.q_proj.bias"
    assert original_to_hf_key("model.mm_projector.0.weight") == "multi_modal_projector.linear_1.weight"
    assert original_to_hf_key("model.vision_tower.vision_tower.vision_model.post_layernorm.bias") == (
        "vision_tower.vision_model.post_layernorm.bias")
    assert original_to_hf_key("model.image_newline") == "image_newline"
    assert original_to_hf_key("lm_head.weight") == "language_model.lm_head.weight"


def test_configs_read_both_layouts(tmp_path: Path) -> None:
    raw = {**LLAVA_NEXT_72B, "tokenizer_model_max_length": 32768, "mm_spatial_pool_mode": "bilinear"}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    cfg = LlavaNextConfig.from_pretrained(tmp_path)
    text = cfg.text_config
    assert (text.model_type, text.num_key_value_heads, text.intermediate_size, text.vocab_size) == ("qwen2", 64, 24576, 152064)
    assert (cfg.vision_config.image_size, cfg.vision_feature_layer, cfg.image_token_id) == (336, -2, 151646)
    assert cfg.vision_feature_select_strategy == "default" and not hasattr(cfg, "mm_spatial_pool_mode")
    cfg.save_pretrained(tmp_path / "saved")  # written in the llava-hf layout, read back unchanged
    again = LlavaNextConfig.from_pretrained(tmp_path / "saved")
    assert not is_original_layout(json.loads((tmp_path / "saved" / "config.json").read_text()))
    assert again.text_config.num_key_value_heads == 64 and again.image_token_id == 151646
    with pytest.raises(NotImplementedError, match="mm_patch_merge_type"):
        LlavaNextConfig(**{**LLAVA_NEXT_72B, "mm_patch_merge_type": "flat"})


@pytest.mark.parametrize(("model_type", "llm", "vision"), [
    ("llava1d6-mistral-7b-instruct", 96, 72), ("llava1d6-yi-34b-instruct", 180, 72),
    ("llama3-llava-next-8b", 96, 72), ("llava-next-72b", 240, 72), ("llava-next-110b", 240, 72),
])
def test_lora_default_targets_hit_llm_and_clip(model_type: str, llm: int, vision: int) -> None:
    """The registry DEFAULT (q_proj, k_proj, v_proj) by peft suffix matching also wraps CLIP's attention."""
    targets = MODELS.get(model_type).lora_target_modules
    model = on_meta(model_type)
    hit = [n for n, m in model.named_modules()
           if isinstance(m, torch.nn.Linear) and any(n == t or n.endswith("." + t) for t in targets)]
    assert sum(n.startswith("model.language_model.") for n in hit) == llm
    assert sum(n.startswith("model.vision_tower.") for n in hit) == vision and len(hit) == llm + vision


def test_meta_build_is_fast() -> None:
    import time

    start = time.perf_counter()
    on_meta("llava-next-110b")
    assert time.perf_counter() - start < 10


# ---- tiny models: images through the real template + collator --------------------------------------------------------
@pytest.mark.parametrize("model_type", ALL)
def test_embed_inputs_puts_image_rows_at_the_template_spans(model_type: str) -> None:
    model = tiny(model_type)
    samples, batch = encode(model_type, [
        {"query": "Describe.", "response": "A cat.", "images": [img(336, 336)]},
        {"query": "Describe this one.", "response": "Stripes.", "images": [img(300, 200, seed=1)]},
    ])
    ids = batch["input_ids"]
    with torch.no_grad():
        embeds = model.embed_inputs(ids, batch["pixel_values"], batch["images_per_sample"], image_sizes=batch["image_sizes"])
        features = model.get_image_features(batch["pixel_values"], batch["image_sizes"])
        image = ids == model.config.image_token_id
        tokens = model.get_input_embeddings()(ids.masked_fill(image, 0))
    lead, trail = model.image_span_margin
    k, expected_image = 0, torch.zeros_like(image)
    for row, sample in enumerate(samples):
        for start, length in sample["image_spans"]:
            assert features[k].shape[0] == length - lead - trail
            assert torch.equal(embeds[row, start + lead:start + length - trail], features[k])
            expected_image[row, start + lead:start + length - trail] = True
            k += 1
    assert torch.equal(image, expected_image) and k == len(features) == 2
    assert torch.equal(embeds[~image], tokens[~image])


def test_image_newline_ends_every_grid_row() -> None:
    """336x336 -> grid 1x2 tiles, unpadded to 24 x 24 patches: 576 base rows, then 24 x (24 + newline)."""
    model = tiny("llava1d6-mistral-7b-instruct")
    _, batch = encode("llava1d6-mistral-7b-instruct", [{"query": "Q", "response": "R", "images": [img(336, 336)]}])
    with torch.no_grad():
        (rows,) = model.get_image_features(batch["pixel_values"], batch["image_sizes"])
    assert rows.shape[0] == 576 + 24 * 25 == 1176
    newline_rows = [576 + r * 25 + 24 for r in range(24)]
    assert all(torch.equal(rows[i], model.model.image_newline) for i in newline_rows)
    assert not torch.equal(rows[575], model.model.image_newline)


def test_forward_text_and_images_loss() -> None:
    model_type = "llava1d6-mistral-7b-instruct"
    model = tiny(model_type)
    _, text = encode(model_type, [{"query": "Hi there", "response": "Hello!"}])
    _, both = encode(model_type, [{"query": "Describe.", "response": "A cat.", "images": [img(336, 336)]}])
    with torch.no_grad():
        out_text, out_img = model(**text), model(**both)
    assert out_text.logits.shape == (*text["input_ids"].shape, model.config.text_config.vocab_size)
    assert torch.isfinite(out_text.loss) and torch.isfinite(out_img.loss)
    labels = both["labels"]
    expected = torch.nn.functional.cross_entropy(out_img.logits[0, :-1], labels[0, 1:], ignore_index=-100)
    assert torch.allclose(out_img.loss, expected)


def test_image_id_outside_the_vocabulary_is_never_looked_up() -> None:
    """llama3-llava-next-8b: <image> is 128256, the checkpoint has 128256 embedding rows (0..128255)."""
    model = tiny("llama3-llava-next-8b")
    assert model.config.image_token_id == model.config.text_config.vocab_size == 128256
    _, batch = encode("llama3-llava-next-8b", [{"query": "Describe.", "response": "A cat.", "images": [img(336, 336)]}])
    with torch.no_grad():
        out = model(**{k: v for k, v in batch.items() if k != "labels"}, logits_to_keep=1)
    assert out.logits.shape == (1, 1, 128256) and torch.isfinite(out.logits).all()


def test_mismatched_images_are_refused() -> None:
    model = tiny("llava1d6-mistral-7b-instruct")
    _, batch = encode("llava1d6-mistral-7b-instruct", [{"query": "Q", "response": "R", "images": [img(336, 336)]}])
    with pytest.raises(ValueError, match="images_per_sample"):
        model(**{**batch, "images_per_sample": torch.tensor([2])})
    with pytest.raises(ValueError, match="no pixel_values"):
        model(input_ids=batch["input_ids"])


def test_generate_batch_left_padding_matches_single_prompts() -> None:
    model_type = "llava1d6-mistral-7b-instruct"
    model, tok = tiny(model_type), tokenizer(model_type)
    examples = [{"query": "What is it?", "images": [img(336, 336)]},
                {"query": "Describe the picture in a few more words.", "images": [img(300, 200, seed=2)]}]
    _, batch = encode(model_type, examples, padding_side="left")
    kwargs = {"max_new_tokens": 3, "min_new_tokens": 3, "do_sample": False, "pad_token_id": tok.pad_token_id}
    with torch.no_grad():
        together = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1]:]
        for row, example in enumerate(examples):
            _, single = encode(model_type, [example])
            alone = model.generate(**single, **kwargs)[:, single["input_ids"].shape[1]:]
            assert together[row].tolist() == alone[0].tolist()
    assert together.shape == (2, 3)


def test_save_pretrained_round_trip_is_bit_exact(tmp_path: Path) -> None:
    model_type = "llava1d6-mistral-7b-instruct"
    model = tiny(model_type)
    _, batch = encode(model_type, [{"query": "Q", "response": "R", "images": [img(336, 336)]}])
    model.save_pretrained(tmp_path, safe_serialization=True)
    again = LlavaNextForCausalLM.from_pretrained(tmp_path).eval()
    assert {k: v for k, v in again.state_dict().items()}.keys() == model.state_dict().keys()
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, again(**batch).logits)


def _original_name(key: str) -> str:
    for old, new in (("model.language_model.", "model."), ("model.vision_tower.", "model.vision_tower.vision_tower.vision_model."),
                     ("model.multi_modal_projector.linear_1.", "model.mm_projector.0."),
                     ("model.multi_modal_projector.linear_2.", "model.mm_projector.2.")):
        if key.startswith(old):
            return new + key[len(old):]
    return key  # lm_head.weight, model.image_newline


def test_original_lmms_lab_checkpoint_loads_without_remote_code(tmp_path: Path) -> None:
    """An lmms-lab style folder (original config.json + original key names) loads into the transformers model."""
    from safetensors.torch import save_file

    model_type = "llama3-llava-next-8b"
    model, spec = tiny(model_type), get_arch(model_type)
    state = {_original_name(k): v.contiguous() for k, v in model.state_dict().items()}
    assert hf_to_model(model, state, ORIGINAL_KEY_MAPPING) == {_original_name(k): k for k in model.state_dict()}
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "config.json").write_text(json.dumps(spec.config_dict(tiny=True)))
    loaded = LlavaNextForCausalLM.from_pretrained(tmp_path).eval()
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    _, batch = encode(model_type, [{"query": "Q", "response": "R", "images": [img(336, 336)]}])
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        assert torch.equal(model(**inputs, logits_to_keep=4).logits, loaded(**inputs, logits_to_keep=4).logits)


def test_adapt_to_tokenizer_takes_the_tokenizer_image_id() -> None:
    ids, bos, eos, pad = golden_specials("llava-yi")
    shifted = TinyTokenizer({**ids, "<image>": 64003}, bos=bos, eos=eos, pad=pad)
    config = adapt_to_tokenizer(get_arch("llava1d6-yi-34b-instruct").config_dict(tiny=True), shifted)
    assert LlavaNextConfig(**config).image_token_id == 64003


def test_gradient_checkpointing_trains() -> None:
    spec = get_arch("llava1d6-mistral-7b-instruct")
    torch.manual_seed(0)
    model = spec.model_class(spec.build_config(tiny=True))
    model.gradient_checkpointing_enable()
    model.train()
    _, batch = encode("llava1d6-mistral-7b-instruct", [{"query": "Q", "response": "R", "images": [img(336, 336)]}])
    model(**batch).loss.backward()
    assert model.model.multi_modal_projector.linear_1.weight.grad is not None
    assert model.model.vision_tower.encoder.layers[0].self_attn.q_proj.weight.grad is not None
