"""CogVLM-17B chat architecture: full-size accounting against golden/arch, tiny-model behaviour (expert routing,
rotary positions, image placement, generation with left padding, save/load), built from the real template + collator.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from stand_in import golden_specials

from vlmref.datasets.collate import DataCollator
from vlmref.models.cogvlm import COGVLM_CHAT, SPEC, CogVLMConfig, CogVLMForCausalLM
from vlmref.models.cogvlm.experts import build_position_ids, get_expert_mask
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

MODEL_TYPE = "cogvlm-17b-instruct"
GOLDEN_FILE = Path(__file__).resolve().parent.parent / "golden" / "arch" / f"{SPEC.upstream_keys}.json"
GOLDEN = json.loads(GOLDEN_FILE.read_text())
N_IMG = 1227  # boi + 35 x 35 patches + eoi


def tokenizer() -> TinyTokenizer:
    ids, bos, eos, pad = golden_specials("cogvlm")
    return TinyTokenizer(ids, bos=bos, eos=eos, pad=pad, byte_offset=300)


def image(w: int, h: int, seed: int) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([(x * 7 + y * 3 + seed) % 256, (x * 2 + y * 5 + 40 * seed) % 256, (x ^ y) % 256], -1)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def encode(query: str, response: str | None, seed: int = 0, with_image: bool = True) -> dict:
    meta = MODELS.get(MODEL_TYPE)
    template = get_template(meta.template, tokenizer(), **meta.media_options)
    example = {"query": query, "response": response}
    if with_image:
        example["images"] = [image(64 + 16 * seed, 48, seed)]
    return template.encode(example)


def collate(samples: list[dict], side: str = "right") -> dict:
    return DataCollator(MODEL_TYPE, tokenizer(), padding_side=side)(samples)


def component_counts(model: torch.nn.Module) -> dict[str, int]:
    """Parameters per ArchSpec component; every parameter must belong to exactly one."""
    counts = dict.fromkeys(SPEC.components, 0)
    for name, p in model.named_parameters():
        owners = [c for c, prefixes in SPEC.components.items()
                  for pre in prefixes if name == pre or name.startswith(pre + ".")]
        assert len(owners) == 1, (name, owners)
        counts[owners[0]] += p.numel()
    return {**counts, "total": sum(counts.values())}


@pytest.fixture(scope="module")
def model() -> CogVLMForCausalLM:
    torch.manual_seed(0)
    m = CogVLMForCausalLM(SPEC.build_config(tiny=True)).eval()
    with torch.no_grad():  # non-zero boi/eoi so that their placement is visible
        m.model.vision.boi.normal_()
        m.model.vision.eoi.normal_()
    return m


@pytest.fixture(scope="module")
def train_samples() -> list[dict]:
    return [encode("Describe the picture.", "A red square.", 0), encode("What is it?", "A long grey cat on a mat.", 1)]


@pytest.fixture(scope="module")
def train_batch(train_samples) -> dict:
    return collate(train_samples)


@pytest.fixture(scope="module")
def reference(model, train_batch) -> dict:
    """One forward of the training batch, with the rows each layer-0 MLP expert received."""
    seen = {"vision": 0, "language": 0}
    layer = model.model.layers[0]

    def count(kind):
        return lambda mod, args: seen.__setitem__(kind, seen[kind] + args[0].shape[0])

    hooks = [layer.mlp.vision_mlp.register_forward_pre_hook(count("vision")),
             layer.mlp.language_mlp.register_forward_pre_hook(count("language"))]
    try:
        with torch.no_grad():
            out = model(**train_batch)
    finally:
        for h in hooks:
            h.remove()
    return {"out": out, "rows": seen}


# ---- full size ------------------------------------------------------------------------------------------------------
def test_full_size_state_dict_matches_golden_keys_and_shapes() -> None:
    with torch.device("meta"):
        full = CogVLMForCausalLM(SPEC.build_config())
    ours = {k: list(v.shape) for k, v in full.state_dict().items()}
    assert ours == GOLDEN["keys"]
    assert {k for k, _ in full.named_buffers()} == set(GOLDEN["buffers"])
    counts = component_counts(full)
    assert counts == GOLDEN["param_counts"]
    assert counts["total"] == 17_639_685_376
    published = GOLDEN["published_total"]
    assert abs(counts["total"] - published["value"]) / published["value"] < 0.01
    # the README's "17B" is a rounded name: 17.64e9 is 3.8 % above it
    assert 0.0 < (counts["total"] - published["nominal"]["value"]) / published["nominal"]["value"] < 0.04


def test_config_reads_the_upstream_config_json(tmp_path: Path) -> None:
    upstream = {"_name_or_path": "cogvlm-chat-v1.1", "architectures": ["CogVLMForCausalLM"],
                "transformers_version": "4.35.0",
                "auto_map": {"AutoConfig": "configuration_cogvlm.CogVLMConfig"}, **COGVLM_CHAT}
    (tmp_path / "config.json").write_text(json.dumps(upstream))
    cfg = CogVLMConfig.from_pretrained(str(tmp_path))
    for key, value in COGVLM_CHAT.items():
        if key != "torch_dtype":
            assert getattr(cfg, key) == value, key
    assert cfg.dtype == torch.bfloat16 and cfg.vision_tokens == N_IMG


def test_lora_default_targets_are_the_decoder_experts_only() -> None:
    with torch.device("meta"):
        full = CogVLMForCausalLM(SPEC.build_config())
    targets = MODELS.get(MODEL_TYPE).lora_target_modules  # peft list matching: the name or a ".name" suffix
    matched = [(n, m) for n, m in full.named_modules()
               if isinstance(m, torch.nn.Linear) and any(n == t or n.endswith("." + t) for t in targets)]
    assert len(matched) == 4 * 32 and all(n.startswith("model.layers.") for n, _ in matched)
    lora = sum(8 * (m.in_features + m.out_features) for _, m in matched)
    assert lora == 32 * 2 * 8 * ((4096 + 12288) + (4096 + 4096))  # r=8 over both experts' qkv and dense


# ---- routing and positions on the template's own token_type_ids ------------------------------------------------------
def test_position_ids_and_expert_mask_follow_upstream(train_batch) -> None:
    tt = train_batch["token_type_ids"]
    assert tt[:, 1 : 1 + N_IMG].eq(1).all() and tt.sum(1).tolist() == [N_IMG, N_IMG]
    pos = build_position_ids(tt, train_batch["attention_mask"])
    row = pos[0].tolist()
    assert row[:1] == [0] and row[1] == 1 and set(row[2 : N_IMG]) == {2} and row[N_IMG] == 3
    n0 = int(train_batch["attention_mask"][0].sum())
    assert row[N_IMG + 1 : n0] == list(range(4, 4 + n0 - N_IMG - 1))
    vision = get_expert_mask(tt)
    assert vision[:, 1:N_IMG].all() and not vision[:, N_IMG].any()  # boi + patches vision, eoi language
    assert int(vision.sum()) == 2 * (N_IMG - 1)
    left = collate([encode("Hi", "Yes.", 0), encode("A much longer question here?", "No.", 1)], side="left")
    lpos = build_position_ids(left["token_type_ids"], left["attention_mask"])
    pad = int((left["attention_mask"][0] == 0).sum())
    assert pad > 0 and lpos[0, pad] == 1 and lpos[0, pad + 2] == 3  # a padded row starts at 1 (upstream)


def test_tokens_reach_the_expert_the_mask_chooses(reference, train_batch) -> None:
    rows = reference["rows"]
    assert rows["vision"] == 2 * (N_IMG - 1) and rows["vision"] + rows["language"] == train_batch["input_ids"].numel()


def test_vision_experts_only_touch_image_positions(model, train_batch, reference) -> None:
    """Changing a vision-expert weight changes image-position states but no text state before the image."""
    batch = {k: v for k, v in train_batch.items() if k != "labels"}
    ref = reference["out"].logits
    with torch.no_grad():
        w = model.model.layers[1].mlp.vision_mlp.down_proj.weight
        saved = w.clone()
        w.add_(0.5)
        try:
            changed = model(**batch).logits
        finally:
            w.copy_(saved)
    assert torch.equal(ref[:, 0], changed[:, 0])  # BOS precedes the image (causal)
    assert not torch.allclose(ref[:, 1 : N_IMG], changed[:, 1 : N_IMG])


# ---- embeddings -----------------------------------------------------------------------------------------------------
def test_embed_inputs_puts_features_exactly_on_the_template_spans(model, train_samples, train_batch) -> None:
    with torch.no_grad():
        embeds = model.embed_inputs(**{k: train_batch[k] for k in ("input_ids", "pixel_values", "images_per_sample",
                                                                    "token_type_ids")})
        features = model.get_image_features(train_batch["pixel_values"])
        tokens = model.get_input_embeddings()(train_batch["input_ids"])
    lead, trail = model.image_span_margin
    assert len(features) == 2 and all(f.shape == (N_IMG, 64) for f in features)
    for b, sample in enumerate(train_samples):
        ((start, length),) = sample["image_spans"]
        span = torch.zeros(embeds.shape[1], dtype=torch.bool)
        span[start + lead : start + length - trail] = True
        assert torch.equal(embeds[b, span], features[b][lead : length - trail])
        assert torch.equal(embeds[b, ~span], tokens[b, ~span])
    assert torch.equal(features[0][0], model.model.vision.boi[0, 0])
    assert torch.equal(features[1][-1], model.model.vision.eoi[0, 0])


def test_mismatched_image_positions_are_refused(model, train_batch) -> None:
    tt = train_batch["token_type_ids"].clone()
    tt[0, 1] = 0
    with pytest.raises(ValueError, match=r"batch\[0\]: 1226 positions have token_type_ids 1"):
        model.embed_inputs(train_batch["input_ids"], train_batch["pixel_values"], train_batch["images_per_sample"],
                           token_type_ids=tt)
    with pytest.raises(ValueError, match="no pixel_values"):
        model(input_ids=train_batch["input_ids"], token_type_ids=train_batch["token_type_ids"])


# ---- forward, loss, padding -----------------------------------------------------------------------------------------
def test_forward_with_images_and_text_only(model, train_batch, reference) -> None:
    out = reference["out"]
    assert out.logits.shape == (*train_batch["input_ids"].shape, 32000) and out.logits.dtype == torch.float32
    assert torch.isfinite(out.loss)
    logits, labels = out.logits[:, :-1], train_batch["labels"][:, 1:]
    expected = torch.nn.functional.cross_entropy(logits[labels != -100], labels[labels != -100])
    assert torch.allclose(out.loss, expected)
    text = encode("Hello there.", "Hi.", with_image=False)
    ids = torch.tensor([text["input_ids"]])
    assert sum(text["token_type_ids"]) == 0
    with torch.no_grad():
        t = model(ids, token_type_ids=torch.tensor([text["token_type_ids"]]), labels=torch.tensor([text["labels"]]))
    assert torch.isfinite(t.loss) and t.logits.shape == (1, ids.shape[1], 32000)


def test_left_padding_does_not_change_a_row(model) -> None:
    short, long = encode("Hi", None, 0), encode("A much longer question, with more words?", None, 1)
    batch = collate([short, long], side="left")
    alone = collate([short], side="left")
    with torch.no_grad():
        both = model(**batch, use_cache=False).logits
        single = model(**alone, use_cache=False).logits
    n = single.shape[1]
    assert torch.allclose(both[0, -n:], single[0], atol=1e-4)


# ---- generation -----------------------------------------------------------------------------------------------------
def test_generate_left_padded_batch_matches_single_rows_and_no_cache(model) -> None:
    prompts = [encode("Describe the picture.", None, 0), encode("What colour is the big thing here?", None, 1)]
    batch = collate(prompts, side="left")
    calls = []
    hook = model.model.vision.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=3, do_sample=False, pad_token_id=0)
            no_cache = model.generate(**batch, max_new_tokens=3, do_sample=False, pad_token_id=0, use_cache=False)
    finally:
        hook.remove()
    width = batch["input_ids"].shape[1]
    assert out.shape == (2, width + 3) and torch.equal(out[:, :width], batch["input_ids"])
    assert torch.equal(out, no_cache)
    assert len(calls) == 1 + 3  # once per generate with the cache (prefill only), every step without it
    with torch.no_grad():
        first = model.generate(**collate(prompts[:1], side="left"), max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert torch.equal(out[0, -3:], first[0, -3:])


# ---- save / load ----------------------------------------------------------------------------------------------------
def test_save_pretrained_round_trip_is_bit_exact(model, train_batch, reference, tmp_path: Path) -> None:
    model.save_pretrained(str(tmp_path), safe_serialization=True)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = CogVLMForCausalLM.from_pretrained(str(tmp_path)).eval()
    ref, got = model.state_dict(), loaded.state_dict()
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    with torch.no_grad():
        assert torch.equal(reference["out"].logits, loaded(**train_batch).logits)


def test_strict_load_with_or_without_inv_freq(model) -> None:
    fresh = CogVLMForCausalLM(model.config)
    state = model.state_dict()
    fresh.load_state_dict(state, strict=True)
    fresh.load_state_dict({k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}, strict=True)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())


def test_gradient_checkpointing_gives_the_same_gradients(train_samples) -> None:
    torch.manual_seed(1)
    m = CogVLMForCausalLM(SPEC.build_config(tiny=True, num_hidden_layers=1))
    m.train()
    batch = collate(train_samples[:1])
    grads = []
    for checkpointing in (False, True):
        m.zero_grad()
        if checkpointing:
            enable = getattr(m, "activation_checkpointing_enable", None) or m.gradient_checkpointing_enable
            enable()
            assert m.model.layers[0].gradient_checkpointing
            assert m.model.vision.transformer.layers[0].gradient_checkpointing
        m(**batch).loss.backward()
        grads.append(m.model.layers[0].self_attn.vision_expert_query_key_value.weight.grad.clone())
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], atol=1e-6)
