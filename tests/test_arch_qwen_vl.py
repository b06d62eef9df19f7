"""Qwen-VL-Chat architecture: full-size accounting against golden/arch, tiny-model behaviour (image placement between
<img>/</img>, resampler shapes, SwiGLU with SiLU on w2, dynamic NTK / logn only beyond seq_length, generation with left
padding, save/load), with inputs built by the real template + collator (byte-level stand-in tokenizer, real ids).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from stand_in import golden_specials

from vlmref.datasets.collate import DataCollator
from vlmref.models.info import matched_linears, parameter_counts, resolve_lora_targets
from vlmref.models.kv_cache import output_cache
from vlmref.models.qwen_vl import QWEN_VL_CHAT, SPEC, ImageSpanError, QWenVLConfig, QWenVLForCausalLM
from vlmref.models.qwen_vl.modeling import logn_scale, ntk_alpha_for
from vlmref.models.qwen_vl.vision import resize_abs_pos, sincos_pos_embed_2d
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

MODEL_TYPE = "qwen-vl-chat"
REPO = Path(__file__).resolve().parent.parent
GOLDEN_DIR = REPO / "golden"
GOLDEN = json.loads((GOLDEN_DIR / "arch" / f"{SPEC.upstream_keys}.json").read_text())
IMG, END = 151857, 151858
SPAN = 258  # <img> + 256 features + </img>


def tokenizer() -> TinyTokenizer:
    ids, bos, eos, pad = golden_specials("qwen-vl")
    return TinyTokenizer(ids, bos=bos, eos=eos, pad=pad, byte_offset=300)


def encode(query: str, response: str | None, images: list[str]) -> dict:
    template = get_template("qwen-vl", tokenizer(), media_root=str(GOLDEN_DIR))
    return template.encode({"query": query, "response": response, "images": images})


def collate(samples: list[dict], side: str = "right") -> dict:
    return DataCollator(MODEL_TYPE, tokenizer(), padding_side=side, media_root=str(GOLDEN_DIR))(samples)


def tiny(**overrides) -> QWenVLForCausalLM:
    torch.manual_seed(0)
    return QWenVLForCausalLM(SPEC.build_config(tiny=True, **overrides)).eval()


@pytest.fixture(scope="module")
def model() -> QWenVLForCausalLM:
    return tiny()


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    return [
        encode("Describe.", "A red square.", ["images/red_640x480.png"]),
        encode("Compare.", "Blue, then green.", ["images/blue_336x336.png", "images/green_300x900.png"]),
    ]


@pytest.fixture(scope="module")
def batch(samples) -> dict:
    return collate(samples)


# ---- full size ------------------------------------------------------------------------------------------------------
def test_full_size_state_dict_and_counts_match_golden() -> None:
    with torch.device("meta"):
        full = QWenVLForCausalLM(SPEC.build_config())
    assert {k: list(v.shape) for k, v in full.state_dict().items()} == GOLDEN["keys"]
    counts = parameter_counts(full, SPEC)
    assert counts == GOLDEN["param_counts"]
    published = GOLDEN["published_total"]["value"]
    assert abs(counts["total"] - published) / published < 0.01
    # the paper's split: ViT 1.9B, adapter 0.08B, LLM 7.7B
    assert round(counts["vision_tower"] / 1e9, 1) == 1.9 and round(counts["projector"] / 1e9, 2) == 0.08
    assert round((counts["language_model"] + counts["lm_head"]) / 1e9, 1) == 7.7


def test_golden_file_is_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("qwen_vl_golden", REPO / "scripts" / "arch_golden" / "qwen_vl.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (GOLDEN_DIR / "arch" / "qwen-vl-chat.json").read_text() == gen.dumps(gen.build())
    assert {k: v for k, v in gen.CONFIG.items() if k != "visual"}.items() <= QWEN_VL_CHAT.items()
    assert gen.CONFIG["visual"] == {k: v for k, v in QWEN_VL_CHAT["visual"].items()}


def test_full_size_resampler_and_vit_geometry() -> None:
    with torch.device("meta"):
        full = QWenVLForCausalLM(SPEC.build_config())
    visual = full.transformer.visual
    pool = visual.attn_pool
    assert (pool.attn.num_heads, pool.attn.head_dim, pool.num_queries) == (32, 128, 256)
    assert (pool.kv_proj.in_features, pool.kv_proj.out_features) == (1664, 4096) and pool.kv_proj.bias is None
    assert not pool.pos_embed.requires_grad and "transformer.visual.attn_pool.pos_embed" in full.state_dict()
    assert visual.conv1.bias is None and (448 // visual.patch_size) ** 2 == 1024
    block = visual.transformer.resblocks[0]
    assert block.mlp.c_fc.out_features == 8192 and block.attn.num_heads == 16
    assert full.transformer.h[0].attn.c_attn.bias is not None and full.transformer.h[0].attn.c_proj.bias is None


def test_config_reads_upstream_config_json(tmp_path: Path) -> None:
    upstream = {**QWEN_VL_CHAT, "architectures": ["QWenLMHeadModel"], "model_type": "qwen",
                "auto_map": {"AutoConfig": "configuration_qwen.QWenConfig"}, "transformers_version": "4.31.0"}
    (tmp_path / "config.json").write_text(json.dumps(upstream))
    cfg = QWenVLConfig.from_pretrained(str(tmp_path))
    assert cfg.visual == QWEN_VL_CHAT["visual"] and cfg.seq_length == 2048 and cfg.intermediate_size == 22016
    assert (cfg.image_start_id, cfg.n_queries, cfg.use_dynamic_ntk, cfg.use_logn_attn) == (IMG, 256, True, True)
    assert not hasattr(cfg, "auto_map") or not cfg.auto_map


def test_lora_default_is_the_llm_c_attn(model) -> None:
    default = matched_linears(model, resolve_lora_targets(model, MODEL_TYPE, "DEFAULT"))
    assert [n for n, _, _ in default] == [f"transformer.h.{i}.attn.c_attn" for i in range(2)]


# ---- tiny model: images -----------------------------------------------------------------------------------------------
def test_forward_with_images_and_text_only(model, batch) -> None:
    assert batch["pixel_values"].shape == (3, 3, 448, 448) and batch["images_per_sample"].tolist() == [1, 2]
    with torch.no_grad():
        out = model(**batch)
        text = model(**collate([encode("Hello there.", "Hi.", [])]))
    assert torch.isfinite(out.loss) and out.logits.shape == (*batch["input_ids"].shape, 151936)
    assert torch.isfinite(text.loss)


def test_embed_inputs_writes_features_between_img_tags(model, samples, batch) -> None:
    ids, pixels = batch["input_ids"], batch["pixel_values"]
    with torch.no_grad():
        embeds = model.embed_inputs(ids, pixels, batch["images_per_sample"])
        feats = model.get_image_features(pixels)
        tokens = model.transformer.wte(ids)
    assert [tuple(f.shape) for f in feats] == [(256, 64)] * 3
    lead, trail = model.image_span_margin
    covered = torch.zeros(ids.shape, dtype=torch.bool)
    k = 0
    for row, sample in enumerate(samples):
        for start, length in sample["image_spans"]:
            assert length == SPAN and ids[row, start] == IMG and ids[row, start + length - 1] == END
            inner = slice(start + lead, start + length - trail)
            assert torch.equal(embeds[row, inner], feats[k])
            covered[row, inner] = True
            k += 1
    assert torch.equal(embeds[~covered], tokens[~covered])


def test_image_span_errors(model, batch) -> None:
    ids, pixels = batch["input_ids"], batch["pixel_values"]
    with pytest.raises(ImageSpanError, match="no pixel_values"):
        model.embed_inputs(ids)
    with pytest.raises(ImageSpanError, match="3 <img>.*2 image"):
        model.embed_inputs(ids, pixels[:2])
    with pytest.raises(ImageSpanError, match="images_per_sample"):
        model.embed_inputs(ids, pixels, torch.tensor([2, 1]))
    cut = ids.clone()
    cut[0, 44 + SPAN - 1] = 0  # drop one </img>
    with pytest.raises(ImageSpanError):
        model.embed_inputs(cut, pixels)


def test_resampler_and_position_grid() -> None:
    table = sincos_pos_embed_2d(64, 16)
    assert table.shape == (256, 64)
    assert torch.equal(table[0], torch.tensor(([0.0] * 16 + [1.0] * 16) * 2))
    assert torch.allclose(table[1, 0], torch.sin(torch.tensor(1.0))) and table[1, 32] == 0  # w first, then h
    grid = torch.randn(256, 8)
    assert resize_abs_pos(grid, 256) is grid and resize_abs_pos(grid, 1024).shape == (1024, 8)
    m = tiny()
    assert torch.equal(m.transformer.visual.attn_pool.pos_embed, sincos_pos_embed_2d(64, 16))
    with torch.no_grad():
        assert m.transformer.visual(torch.randn(2, 3, 448, 448)).shape == (2, 256, 64)
        assert m.transformer.visual(torch.randn(1, 3, 224, 224)).shape == (1, 256, 64)  # the dummy image


def test_mlp_applies_silu_to_w2(model) -> None:
    mlp = model.transformer.h[0].mlp
    x = torch.randn(3, 64)
    with torch.no_grad():
        assert torch.allclose(mlp(x), mlp.c_proj(mlp.w1(x) * torch.nn.functional.silu(mlp.w2(x))))
        assert not torch.allclose(mlp(x), mlp.c_proj(torch.nn.functional.silu(mlp.w1(x)) * mlp.w2(x)))


# ---- long-context scaling -------------------------------------------------------------------------------------------
def test_dynamic_ntk_and_logn_values() -> None:
    assert [ntk_alpha_for(n, 2048) for n in (1, 1024, 2048, 2049, 4096, 4097, 8192)] == [1, 1, 1, 3, 3, 7, 7]
    scale = logn_scale(torch.arange(4100)[None], 2048).flatten()
    assert torch.equal(scale[:2048], torch.ones(2048))
    assert math.isclose(scale[4095].item(), math.log(4096, 2048), rel_tol=1e-6)


def test_ntk_and_logn_change_nothing_up_to_seq_length() -> None:
    base, plain = tiny(seq_length=16), tiny(seq_length=16, use_dynamic_ntk=False, use_logn_attn=False)
    ids = torch.randint(0, 150000, (1, 40))
    with torch.no_grad():
        assert torch.equal(base(input_ids=ids[:, :16]).logits, plain(input_ids=ids[:, :16]).logits)
        long_base, long_plain = base(input_ids=ids, use_cache=True).logits, plain(input_ids=ids).logits
    assert not torch.allclose(long_base[:, :16], long_plain[:, :16])  # alpha 7 rescales the rotary of every position
    assert base.transformer.ntk_alpha == 7  # 40 tokens: 2 ** ceil(log2(40 / 16) + 1) - 1; reused by decode steps
    base.train()
    with torch.no_grad():  # training: no logn, cached alpha (upstream behaviour)
        assert base.transformer.ntk_alpha == 7 and torch.isfinite(base(input_ids=ids, labels=ids).loss)


# ---- generation, training, save/load --------------------------------------------------------------------------------
def test_generate_left_padded_batch_matches_single_prompts(model) -> None:
    prompts = [encode("Describe.", None, ["images/red_640x480.png"]),
               encode("What colour is the large square in this picture?", None, ["images/blue_336x336.png"])]
    batch = collate(prompts, side="left")
    assert batch["attention_mask"][0, 0] == 0  # the shorter prompt is left-padded
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=3, do_sample=False)
        singles = [model.generate(**collate([p], side="left"), max_new_tokens=3, do_sample=False) for p in prompts]
    assert out.shape == (2, batch["input_ids"].shape[1] + 3)
    for row, single in enumerate(singles):
        assert torch.equal(out[row, -3:], single[0, -3:])


def test_image_inputs_are_dropped_after_prefill(model, batch) -> None:
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        prefill = model(**inputs, use_cache=True, logits_to_keep=1)
    step = model.prepare_inputs_for_generation(
        torch.cat([batch["input_ids"], batch["input_ids"][:, -1:]], 1), cache=output_cache(prefill),
        attention_mask=torch.ones(2, batch["input_ids"].shape[1] + 1, dtype=torch.long), use_cache=True,
        pixel_values=batch["pixel_values"], images_per_sample=batch["images_per_sample"], next_sequence_length=1,
    )
    assert "pixel_values" not in step and "images_per_sample" not in step and step["input_ids"].shape == (2, 1)


def test_training_step_and_text_only_dummy_image(samples) -> None:
    m = tiny().train()
    m(**collate(samples[:1])).loss.backward()
    assert m.transformer.visual.attn_pool.query.grad.abs().sum() > 0 and m.transformer.h[0].attn.c_attn.weight.grad is not None
    m.zero_grad(set_to_none=True)
    text = collate([encode("Hello there.", "Hi.", [])])
    loss = m(**text).loss
    loss.backward()  # upstream: a zero 224x224 image joins the graph with weight 0
    assert m.transformer.visual.conv1.weight.grad is not None and m.transformer.visual.conv1.weight.grad.abs().sum() == 0
    m.zero_grad(set_to_none=True)
    m.transformer.visual.requires_grad_(False)
    assert torch.equal(m(**text).loss, loss)


def test_save_load_round_trip_is_bit_exact(model, samples, tmp_path: Path) -> None:
    model.save_pretrained(str(tmp_path), safe_serialization=True)
    assert (tmp_path / "model.safetensors").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "qwen"
    again = QWenVLForCausalLM.from_pretrained(str(tmp_path)).eval()
    ours, theirs = model.state_dict(), again.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    one = collate(samples[:1])
    with torch.no_grad():
        assert torch.equal(model(**one).logits, again(**one).logits)
