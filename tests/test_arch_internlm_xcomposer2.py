"""InternLM-XComposer2-7B / IXC-2.5-7B architecture: checkpoint keys and sizes (full size, meta device), and tiny
models fed by the real templates + collator (byte-level stand-in tokenizer with the real special ids)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from stand_in import golden_specials

from vlmref.datasets.collate import DataCollator
from vlmref.models.arch import get_arch
from vlmref.models.internlm_xcomposer2.config import IXC2_7B, InternLMXComposer2Config
from vlmref.models.internlm_xcomposer2.image_tokens import xcomposer2_5_image_tokens
from vlmref.models.internlm_xcomposer2.internlm2 import InternLM2Attention, rotary_cos_sin
from vlmref.models.internlm_xcomposer2.plora import PLoRA
from vlmref.models.internlm_xcomposer2.vision import hd_layout, hd_positions
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

GOLDEN_ARCH = Path(__file__).resolve().parent.parent / "golden" / "arch"
IXC2, IXC25 = "internlm-xcomposer2-7b-chat", "internlm-xcomposer2_5-7b-chat"
TYPES = [IXC2, IXC25]


def tokenizer(model_type: str) -> TinyTokenizer:
    ids, bos, eos, pad = golden_specials(MODELS.get(model_type).template)
    return TinyTokenizer(ids, bos=bos, eos=eos, pad=pad, byte_offset=300)


def template(model_type: str):
    meta = MODELS.get(model_type)
    return get_template(meta.template, tokenizer(model_type), **meta.media_options)


def image(w: int = 336, h: int = 336, seed: int = 0) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy(), "RGB")


def batch(model_type: str, samples, padding_side: str = "right"):
    t = template(model_type)
    return DataCollator(model_type, tokenizer(model_type), padding_side=padding_side)([t.encode(s) for s in samples])


def randomize_adapters(model) -> None:
    """A fresh model has zero PLoRA B / separators (a no-op adapter); give them values so the tests see them."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "Plora_B" in name or "lora_" in name or "_GN" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


_MODELS: dict[str, torch.nn.Module] = {}


def tiny(model_type: str):
    if model_type not in _MODELS:
        torch.manual_seed(0)
        spec = get_arch(model_type)
        model = spec.model_class(spec.build_config(tiny=True)).eval()
        randomize_adapters(model)
        _MODELS[model_type] = model
    return _MODELS[model_type]


# no system prompt: the stand-in tokenizer is byte-level, and every position costs a 92544-wide logits row
SAMPLES = [{"query": "<image>Describe it.", "response": "A square.", "images": [image()], "system": ""},
           {"query": "Hello!", "response": "Hi.", "system": ""}]


def _with_images(samples, imgs):
    out = []
    for s in samples:
        s = dict(s)
        if s.get("images"):
            s["images"] = imgs
        out.append(s)
    return out


# ---- full size on the meta device -------------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", TYPES)
def test_full_size_keys_shapes_and_counts_match_golden(model_type: str) -> None:
    spec = get_arch(model_type)
    golden = json.loads((GOLDEN_ARCH / f"{spec.upstream_keys}.json").read_text())
    start = time.perf_counter()
    with torch.device("meta"):
        model = spec.model_class(spec.build_config())
    assert time.perf_counter() - start < 20
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == golden["keys"]
    counts = {c: 0 for c in spec.components}
    for name, p in model.named_parameters():
        owners = [c for c, prefixes in spec.components.items() if any(name == q or name.startswith(q + ".")
                                                                     for q in prefixes)]
        assert len(owners) == 1, (name, owners)
        counts[owners[0]] += p.numel()
    counts["total"] = sum(counts.values())
    assert counts == golden["param_counts"]
    published = golden["published_total"]["value"]
    assert abs(counts["total"] - published) / published < 0.01


def test_full_size_numbers() -> None:
    cfg = get_arch(IXC25).build_config()
    assert (cfg.image_layout, cfg.vision_config["image_size"], cfg.projector_in) == ("hd", 560, 4096)
    assert get_arch(IXC2).build_config().image_tokens == 256
    with torch.device("meta"):
        attn = InternLM2Attention(cfg, 0)
    assert attn.wqkv.weight.shape == (6144, 4096) and attn.groups == 4
    assert isinstance(attn.wqkv, torch.nn.Linear)  # ms-swift's LoRA DEFAULT 'wqkv' wraps it as a Linear
    assert MODELS.get(IXC2).lora_target_modules == ("wqkv",)


# ---- config --------------------------------------------------------------------------------------------------------
def test_config_reads_upstream_config_json(tmp_path: Path) -> None:
    upstream = {k: v for k, v in IXC2_7B.items() if k not in ("image_layout", "vision_config", "plora_r",
                                                             "plora_alpha", "plora_dropout", "task_lora_ranks")}
    (tmp_path / "config.json").write_text(json.dumps({**upstream, "model_type": "internlmxcomposer2",
                                                      "attn_implementation": "eager"}))
    cfg = InternLMXComposer2Config.from_pretrained(tmp_path)
    assert (cfg.image_layout, cfg.vision_config["image_size"], cfg.image_tokens, cfg.task_lora_ranks) == (
        "fixed", 224, 256, {})
    assert cfg.rope_scaling == {"factor": 1.0, "type": "dynamic"} and cfg.max_length == 4096
    del upstream["img_size"]  # IXC-2.5's config.json has no img_size
    (tmp_path / "config.json").write_text(json.dumps({**upstream, "model_type": "internlm2"}))
    cfg = InternLMXComposer2Config.from_pretrained(tmp_path)
    assert (cfg.image_layout, cfg.vision_config["image_size"], cfg.projector_in) == ("hd", 560, 4096)
    assert cfg.task_lora_ranks == {"web": 512, "sft": 256, "dpo": 256}


# ---- tiny models ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", TYPES)
def test_forward_text_and_images(model_type: str) -> None:
    model = tiny(model_type)
    b = batch(model_type, SAMPLES)
    with torch.no_grad():
        out = model(**b)
    assert out.logits.shape == (*b["input_ids"].shape, 92544)
    assert torch.isfinite(out.loss) and torch.isfinite(out.logits).all()
    with torch.no_grad():  # text only
        text = batch(model_type, SAMPLES[1:])
        assert torch.isfinite(model(**text).loss)


@pytest.mark.parametrize("model_type", TYPES)
def test_embed_inputs_fills_exactly_the_template_spans(model_type: str) -> None:
    model, t = tiny(model_type), template(model_type)
    samples = _with_images(SAMPLES, [image(seed=1), image(seed=2)])
    samples[0]["query"] = "<image>One<image>two."
    encoded = [t.encode(s) for s in samples]
    b = DataCollator(model_type, tokenizer(model_type))(encoded)
    with torch.no_grad():
        embeds = model.embed_inputs(**b)
        feats = model.get_image_features(b["pixel_values"])
        tokens = model.get_input_embeddings()(b["input_ids"].clamp(min=0))
    lead, trail = model.image_span_margin
    covered = torch.zeros(b["input_ids"].shape, dtype=torch.bool)
    k = 0
    for row, enc in enumerate(encoded):
        for start, length in enc["image_spans"]:
            span = slice(start + lead, start + length - trail)
            assert torch.equal(embeds[row, span], feats[k]), (row, start)
            covered[row, span] = True
            k += 1
    assert k == len(feats) == 2
    assert torch.equal(covered, b["im_mask"])
    assert torch.equal(embeds[~covered], tokens[~covered])


@pytest.mark.parametrize("model_type", TYPES)
def test_generate_left_padded_batch_matches_single_rows(model_type: str) -> None:
    model = tiny(model_type)
    prompts = [{"query": "<image>What is it?", "images": [image(seed=3)], "system": ""},
               {"query": "Hi, how are you today?", "system": ""}]
    b = batch(model_type, prompts, padding_side="left")
    with torch.no_grad():
        out = model.generate(**b, max_new_tokens=3, do_sample=False)
        last = model(**b, logits_to_keep=1).logits[:, -1]
        for row, p in enumerate(prompts):
            alone = model(**batch(model_type, [p], padding_side="left"), logits_to_keep=1).logits[0, -1]
            assert torch.allclose(last[row], alone, atol=1e-4), row
    width = b["input_ids"].shape[1]
    assert out.shape[0] == 2 and width < out.shape[1] <= width + 3
    assert torch.equal(out[:, :width], b["input_ids"])


@pytest.mark.parametrize("model_type", TYPES)
def test_save_pretrained_round_trip_is_bit_exact(model_type: str, tmp_path: Path) -> None:
    model = tiny(model_type)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert {"rope_scaling", "rope_theta", "max_length", "num_key_value_heads"} <= set(saved)
    loaded = type(model).from_pretrained(tmp_path).eval()
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    inputs = {k: v for k, v in batch(model_type, SAMPLES).items() if k != "labels"}
    with torch.no_grad():  # the last 16 positions see the whole sequence, image included
        assert torch.equal(model(**inputs, logits_to_keep=16).logits, loaded(**inputs, logits_to_keep=16).logits)


# ---- family behaviour ----------------------------------------------------------------------------------------------
def test_plora_updates_only_masked_positions() -> None:
    layer = PLoRA(6, 5, bias=True, r=3, alpha=6, dropout=0.0)
    torch.nn.init.normal_(layer.Plora_B.weight)
    x = torch.randn(2, 4, 6)
    mask = torch.tensor([[False, True, False, True], [False, False, False, False]])
    out, plain = layer(x, mask), torch.nn.functional.linear(x, layer.weight, layer.bias)
    assert torch.equal(out[~mask], plain[~mask])
    delta = layer.Plora_B(layer.Plora_A(x[mask])) * 2.0  # alpha / r
    assert torch.allclose(out[mask], plain[mask] + delta, atol=1e-6)
    assert torch.equal(layer(x, None), plain)


def test_plora_in_the_model_acts_from_the_first_image_position_on() -> None:
    model = tiny(IXC2)
    b = batch(IXC2, SAMPLES[:1])
    first = int(b["im_mask"][0].nonzero()[0])
    with torch.no_grad():  # decoder hidden states (the head adds nothing here)
        embeds = model.embed_inputs(**b)
        with_mask = model.model(embeds, im_mask=b["im_mask"])
        without = model.model(embeds)
    assert torch.equal(with_mask[:, :first], without[:, :first])  # causal: nothing before the image sees PLoRA
    assert not torch.allclose(with_mask[:, first:], without[:, first:])


def test_plora_gradients_come_from_image_positions_only() -> None:
    model = tiny(IXC2)
    b = batch(IXC2, SAMPLES[:1])
    first = int(b["im_mask"][0].nonzero()[0])
    labels = torch.full_like(b["input_ids"], -100)
    labels[0, 1:first] = b["input_ids"][0, 1:first]  # only positions before the image
    model.zero_grad()
    model(**{**b, "labels": labels}).loss.backward()
    plora_a = model.model.layers[0].attention.wqkv.Plora_A.weight
    assert plora_a.grad is None or torch.count_nonzero(plora_a.grad) == 0
    assert torch.count_nonzero(model.model.layers[0].attention.wqkv.weight.grad) > 0
    model.zero_grad()


def test_wqkv_split_follows_the_packed_kv_group_layout() -> None:
    cfg = get_arch(IXC2).build_config(tiny=True)  # 4 heads, 2 kv heads, head_dim 16
    attn = InternLM2Attention(cfg, 0)
    d, groups = cfg.head_dim, 2
    qkv = torch.arange(2 * (groups + 2) * d, dtype=torch.float32)[None, None]  # value = output feature index
    q, k, v = attn.split_qkv(qkv)
    for h in range(2):
        base = h * (groups + 2) * d
        for g in range(groups):
            assert torch.equal(q[0, h * groups + g, 0], torch.arange(base + g * d, base + (g + 1) * d).float())
        assert torch.equal(k[0, h, 0], torch.arange(base + groups * d, base + (groups + 1) * d).float())
        assert torch.equal(v[0, h, 0], torch.arange(base + (groups + 1) * d, base + (groups + 2) * d).float())


def test_hd_layout_order_and_separators() -> None:
    rows, cols, side, c = 2, 3, 4, 1  # 4x4 patches per view -> 2x2 merged tokens
    feats = torch.arange((1 + rows * cols) * side * side, dtype=torch.float32).reshape(1 + rows * cols, side * side, c)
    glb_gn, sub_gn = torch.full((1, 1, 4), -1.0), torch.full((1, 1, 1, 4), -2.0)
    out = hd_layout(feats, rows, cols, side, glb_gn, sub_gn)
    assert out.shape[0] == hd_positions(rows, cols, side) == (rows * cols + 1) * 4 + 1 + (rows + 1) * 2
    assert out[0].tolist() == [0, 1, 4, 5] and out[2].tolist() == [-2] * 4  # global row 0: 2 tokens then sub_GN
    assert out[6].tolist() == [-1] * 4  # glb_GN after the 2 x (2 + 1) global rows
    first_tile_row = out[7 : 7 + cols * 2 + 1]
    assert first_tile_row[0].tolist() == [16, 17, 20, 21]  # tile (0, 0) = view 1, top-left block
    assert first_tile_row[2].tolist() == [32, 33, 36, 37]  # tile (0, 1) = view 2
    assert first_tile_row[-1].tolist() == [-2] * 4


@pytest.mark.parametrize("size", [(336, 336), (1000, 400), (300, 900)])
def test_hd_positions_match_the_template_count(size) -> None:
    model = tiny(IXC25)
    w, h = size
    b = batch(IXC25, [{"query": "<image>Hi", "response": "Yo", "images": [image(w, h)], "system": ""}])
    with torch.no_grad():
        (feats,) = model.get_image_features(b["pixel_values"])
    assert feats.shape == (xcomposer2_5_image_tokens(h, w, hd_num=24), 64) == (int(b["im_mask"].sum()), 64)


def test_task_adapters_switch_on_by_task() -> None:
    layer = PLoRA(4, 3, r=2, alpha=2, dropout=0.0, task_ranks={"web": 4, "sft": 2, "dpo": 2})
    for p in layer.parameters():
        torch.nn.init.normal_(p)
    x = torch.randn(1, 2, 4)
    base = layer(x)
    web = layer(x, task="web")
    assert torch.allclose(web, base + layer.lora_web_B(layer.lora_web_A(x)), atol=1e-6)
    write = layer(x, task="write") - base
    sft_dpo = layer.lora_sft_B(layer.lora_sft_A(x)) + layer.lora_dpo_B(layer.lora_dpo_A(x))
    assert torch.allclose(write, sft_dpo, atol=1e-5)
    with pytest.raises(ValueError, match="no task adapter"):
        PLoRA(4, 3, r=2)(x, task="web")


def test_dynamic_rope_scales_the_base_past_max_positions() -> None:
    cfg = get_arch(IXC25).build_config(tiny=True, max_position_embeddings=8)  # factor 2.0
    pos = torch.arange(12)[None]
    cos_short, _ = rotary_cos_sin(cfg, pos, 8, torch.float32)
    cos_long, _ = rotary_cos_sin(cfg, pos, 12, torch.float32)
    dim = cfg.head_dim
    base = cfg.rope_theta * ((2.0 * 12 / 8) - 1) ** (dim / (dim - 2))
    inv = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
    assert torch.allclose(cos_long[0, 11, : dim // 2], torch.cos(11 * inv), atol=1e-6)
    assert torch.allclose(cos_short[0, 3, 0], torch.tensor(math.cos(3.0)))
    assert not torch.allclose(cos_short, cos_long)


def test_gradient_checkpointing_trains() -> None:
    spec = get_arch(IXC2)
    torch.manual_seed(0)
    model = spec.model_class(spec.build_config(tiny=True)).train()
    model.gradient_checkpointing_enable()
    b = batch(IXC2, SAMPLES[:1])
    model(**b).loss.backward()
    assert model.vision_proj[0].weight.grad is not None
    assert model.model.layers[1].feed_forward.w2.Plora_A.weight.grad is not None


def test_image_count_mismatch_is_an_error() -> None:
    model = tiny(IXC2)
    b = batch(IXC2, SAMPLES)
    im_mask = b["im_mask"].clone()
    im_mask[1, 0] = True  # one image position too many in the text-only row
    with torch.no_grad(), pytest.raises(ValueError, match="image positions"):
        model.embed_inputs(b["input_ids"], b["pixel_values"], images_per_sample=b["images_per_sample"],
                           im_mask=im_mask)
