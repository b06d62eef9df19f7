"""Yi-VL-6B / Yi-VL-34B architecture checks: full size on meta against golden/arch (keys identical to upstream's),
tiny models through the real yi-vl template and collator (1024 positions of -200 per image)."""

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
from vlmref.models.model_types import MODELS
from vlmref.models.yi_vl import COMPONENTS, YiVLConfig, YiVLForCausalLM, load_vision_tower
from vlmref.models.yi_vl.config import YI_VL_6B
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "arch"
TYPES = ["yi-vl-6b-chat", "yi-vl-34b-chat"]
MT = "yi-vl-6b-chat"


def on_meta(model_type: str) -> YiVLForCausalLM:
    spec = get_arch(model_type)
    with torch.device("meta"):
        return spec.model_class(spec.build_config())


@cache
def tiny(model_type: str = MT) -> YiVLForCausalLM:
    spec = get_arch(model_type)
    torch.manual_seed(0)
    return spec.model_class(spec.build_config(tiny=True)).eval()


def tokenizer() -> TinyTokenizer:
    ids, bos, eos, pad = golden_specials("yi-vl")
    return TinyTokenizer(ids, bos=bos, eos=eos, pad=pad, byte_offset=300)


def img(w: int, h: int, seed: int = 0) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([(x * 3 + seed) % 256, (y * 7) % 256, (x | y) % 256], -1).astype(np.uint8))


def encode(examples: list[dict], padding_side: str = "right"):
    tok = tokenizer()
    template = get_template("yi-vl", tok, **MODELS.get(MT).media_options)
    samples = [template.encode(ex) for ex in examples]
    return samples, DataCollator(MT, tok, padding_side=padding_side)(samples)


# ---- full size ------------------------------------------------------------------------------------------------------
@pytest.mark.golden
@pytest.mark.parametrize("model_type", TYPES)
def test_state_dict_equals_the_upstream_checkpoint_keys(model_type: str) -> None:
    data = json.loads((GOLDEN / f"{model_type}.json").read_text())
    own = {k: list(v.shape) for k, v in on_meta(model_type).state_dict().items()}
    assert own == data["keys"]


@pytest.mark.golden
@pytest.mark.parametrize("model_type", TYPES)
def test_component_counts_and_published_total(model_type: str) -> None:
    data = json.loads((GOLDEN / f"{model_type}.json").read_text())
    counts = {c: 0 for c in COMPONENTS}
    for name, p in on_meta(model_type).named_parameters():
        (owner,) = [c for c, ps in COMPONENTS.items() if any(name == q or name.startswith(q + ".") for q in ps)]
        counts[owner] += p.numel()
    assert {**counts, "total": sum(counts.values())} == data["param_counts"]
    published = data["published_total"]["value"]
    assert abs(sum(counts.values()) - published) / published < 0.01


@pytest.mark.parametrize(("model_type", "llm"), [("yi-vl-6b-chat", 96), ("yi-vl-34b-chat", 180)])
def test_lora_default_targets_hit_llm_and_vit(model_type: str, llm: int) -> None:
    targets = MODELS.get(model_type).lora_target_modules
    hit = [n for n, m in on_meta(model_type).named_modules()
           if isinstance(m, torch.nn.Linear) and any(n == t or n.endswith("." + t) for t in targets)]
    assert sum(n.startswith("model.layers.") for n in hit) == llm
    assert sum(n.startswith("model.vision_tower.") for n in hit) == 96 and len(hit) == llm + 96


def test_config_reads_the_upstream_folder(tmp_path: Path) -> None:
    upstream = {k: v for k, v in YI_VL_6B.items() if k not in ("vision_config", "image_token_index")}
    (tmp_path / "config.json").write_text(json.dumps({**upstream, "model_type": "llava", "moe_mode": "easy"}))
    cfg = YiVLConfig.from_pretrained(tmp_path)  # no vit folder: CLIP ViT-H/14-448 defaults
    assert (cfg.num_key_value_heads, cfg.rope_parameters["rope_theta"], cfg.vocab_size) == (4, 5e6, 64000)
    assert (cfg.vision_config.hidden_size, cfg.vision_config.image_size, cfg.image_token_index) == (1280, 448, -200)
    vit = tmp_path / "vit" / "clip-vit-H-14-laion2B-s32B-b79K-yi-vl-6B-448"
    vit.mkdir(parents=True)
    (vit / "config.json").write_text(json.dumps({"model_type": "clip_vision_model", "hidden_size": 48,
                                                 "image_size": 448, "patch_size": 14, "num_hidden_layers": 3}))
    assert YiVLConfig.from_pretrained(tmp_path).vision_config.hidden_size == 48
    with pytest.raises(NotImplementedError):
        YiVLConfig(**{**YI_VL_6B, "mm_projector_type": "mlp2x_gelu"})


# ---- modules -----------------------------------------------------------------------------------------------------------
def test_vision_tower_matches_transformers_clip_hidden_state_minus_2() -> None:
    from transformers import CLIPVisionModel

    model = tiny()
    body = model.model.vision_tower.vision_tower.vision_model
    reference = CLIPVisionModel(model.config.vision_config).eval()
    reference.load_state_dict(body.state_dict(), strict=True)  # transformers 5: no vision_model level
    pixels = torch.randn(2, 3, 448, 448)
    with torch.no_grad():
        expected = reference(pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
        got = model.model.vision_tower(pixels)
    assert got.shape == (2, 1024, 32) and torch.allclose(got, expected, atol=1e-5)


def test_projector_is_linear_layernorm_gelu_linear_layernorm() -> None:
    kinds = [type(m).__name__ for m in tiny().model.mm_projector]
    assert kinds == ["Linear", "LayerNorm", "GELU", "Linear", "LayerNorm"]


# ---- tiny model through template + collator ------------------------------------------------------------------------
def test_embed_inputs_fills_the_minus_200_runs_in_order() -> None:
    model = tiny()
    samples, batch = encode([
        {"query": "And this?", "response": "A dog.", "history": [["What is it?", "A cat."]], "images": [img(64, 48), img(40, 90, 1)]},
        {"query": "Just text.", "response": "Fine."},
    ])
    assert batch["images_per_sample"].tolist() == [2, 0]
    ids = batch["input_ids"]
    with torch.no_grad():
        embeds = model.embed_inputs(ids, batch["pixel_values"], batch["images_per_sample"])
        features = model.get_image_features(batch["pixel_values"])
        image = ids == -200
        tokens = model.model.embed_tokens(ids.masked_fill(image, 0))
    spans = samples[0]["image_spans"]
    assert [n for _, n in spans] == [1024, 1024] and model.image_span_margin == (0, 0)
    for k, (start, length) in enumerate(spans):
        assert torch.equal(embeds[0, start:start + length], features[k])
        assert ids[0, start:start + length].eq(-200).all()
    assert int(image.sum()) == 2048
    assert torch.equal(embeds[~image], tokens[~image])


def test_forward_loss_and_refusals() -> None:
    model = tiny()
    _, batch = encode([{"query": "Describe.", "response": "A cat.", "images": [img(64, 48)]}])
    with torch.no_grad():
        out = model(**batch)
        text = model(**encode([{"query": "Hi", "response": "Hello."}])[1])
    expected = torch.nn.functional.cross_entropy(out.logits[0, :-1], batch["labels"][0, 1:], ignore_index=-100)
    assert torch.isfinite(out.loss) and torch.allclose(out.loss, expected) and torch.isfinite(text.loss)
    with pytest.raises(ValueError, match="images_per_sample"):
        model(**{**batch, "images_per_sample": torch.tensor([0])})
    with pytest.raises(ValueError, match="no pixel_values"):
        model(input_ids=batch["input_ids"])


def test_generate_batch_left_padding_matches_single_prompts() -> None:
    model, tok = tiny(), tokenizer()
    examples = [{"query": "What is it?", "images": [img(64, 48)]},
                {"query": "Describe the picture in more words, please.", "images": [img(50, 50, 3)]}]
    _, batch = encode(examples, padding_side="left")
    kwargs = {"max_new_tokens": 3, "min_new_tokens": 3, "do_sample": False, "pad_token_id": tok.pad_token_id}
    with torch.no_grad():
        together = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1]:]
        for row, example in enumerate(examples):
            _, single = encode([example])
            alone = model.generate(**single, **kwargs)[:, single["input_ids"].shape[1]:]
            assert together[row].tolist() == alone[0].tolist()
    assert together.shape == (2, 3)


def test_save_pretrained_round_trip_and_the_vit_folder(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = tiny()
    _, batch = encode([{"query": "Q", "response": "R", "images": [img(64, 48)]}])
    model.save_pretrained(tmp_path, safe_serialization=True)
    again = YiVLForCausalLM.from_pretrained(tmp_path).eval()
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, again(**inputs).logits)
    # upstream keeps the ViT it uses in vit/<name>: a CLIPVisionModel folder with vision_model.* keys
    vit = tmp_path / "vit" / model.config.mm_vision_tower.split("/")[-1]
    vit.mkdir(parents=True)
    tower = model.model.vision_tower.vision_tower.state_dict()
    save_file({k: v + 1 for k, v in tower.items()}, str(vit / "model.safetensors"))
    from_vit = YiVLForCausalLM.from_pretrained(tmp_path)
    kept = YiVLForCausalLM.from_pretrained(tmp_path, vision_tower="checkpoint")
    key = "vision_model.encoder.layers.0.mlp.fc1.weight"
    assert torch.equal(from_vit.model.vision_tower.vision_tower.state_dict()[key], tower[key] + 1)
    assert torch.equal(kept.model.vision_tower.vision_tower.state_dict()[key], tower[key])
    assert torch.equal(from_vit.lm_head.weight, model.lm_head.weight)
    # a transformers 5 CLIPVisionModel save (no vision_model. prefix) plus a stray buffer load too
    torch.save({**{k.removeprefix("vision_model."): v for k, v in tower.items()},
                "embeddings.position_ids": torch.arange(3)}, vit / "pytorch_model.bin")
    (vit / "model.safetensors").unlink()
    assert load_vision_tower(kept, vit) == ["embeddings.position_ids"]
    assert torch.equal(kept.model.vision_tower.vision_tower.state_dict()[key], tower[key])


def test_gradient_checkpointing_reaches_the_vit() -> None:
    spec = get_arch(MT)
    torch.manual_seed(0)
    model = spec.model_class(spec.build_config(tiny=True))
    model.gradient_checkpointing_enable()
    model.train()
    _, batch = encode([{"query": "Q", "response": "R", "images": [img(64, 48)]}])
    model(**batch).loss.backward()
    assert model.model.mm_projector[0].weight.grad is not None
    assert model.model.vision_tower.vision_tower.vision_model.encoder.layers[0].self_attn.q_proj.weight.grad is not None
