"""The model registry: the 11 seed model types, their templates, aliases, documented footprints and flags."""

from __future__ import annotations

import dataclasses

import pytest

import vlmref
from vlmref.models.model_types import MODELS, ModelType, get_default_lora_target_modules, get_model_meta
from vlmref.templates import TEMPLATES

SEED_TEMPLATES = {
    "cogvlm-17b-instruct": "cogvlm",
    "qwen-vl-chat": "qwen-vl",
    "internlm-xcomposer2-7b-chat": "internlm-xcomposer2",
    "internlm-xcomposer2_5-7b-chat": "internlm-xcomposer2_5",
    "yi-vl-6b-chat": "yi-vl",
    "yi-vl-34b-chat": "yi-vl",
    "llava1d6-mistral-7b-instruct": "llava-mistral",
    "llava1d6-yi-34b-instruct": "llava-yi",
    "llama3-llava-next-8b": "llama-llava-next",
    "llava-next-72b": "llava-qwen-instruct",
    "llava-next-110b": "llava-qwen-instruct",
}


def test_exactly_the_seed_model_types_are_registered() -> None:
    assert sorted(MODELS.names()) == sorted(SEED_TEMPLATES)
    assert len(MODELS) == 11


@pytest.mark.parametrize(("model_type", "template"), sorted(SEED_TEMPLATES.items()))
def test_model_template(model_type: str, template: str) -> None:
    meta = get_model_meta(model_type)
    assert meta.model_type == model_type
    assert meta.template == template
    assert template in TEMPLATES  # the template it names exists
    assert vlmref.get_default_template_type(model_type) == template


@pytest.mark.parametrize(
    ("alias", "canonical", "template"),
    [
        ("cogvlm-17b-chat", "cogvlm-17b-instruct", "cogvlm"),
        ("llava1_6-mistral-7b-instruct", "llava1d6-mistral-7b-instruct", "llava-mistral"),
        ("llava1_6-yi-34b-instruct", "llava1d6-yi-34b-instruct", "llava-yi"),
    ],
)
def test_ms_swift_names_are_aliases(alias: str, canonical: str, template: str) -> None:
    assert MODELS.canonical(alias) == canonical
    assert get_model_meta(alias) is get_model_meta(canonical)
    assert vlmref.get_default_template_type(alias) == template
    assert alias not in MODELS.names()  # an alias, not a second entry


def test_model_type_constants_resolve() -> None:
    names = [v for k, v in vars(ModelType).items() if not k.startswith("_")]
    assert len(names) == 14
    for name in names:
        assert name in MODELS


def test_unknown_model_type_raises_keyerror_naming_it() -> None:
    with pytest.raises(KeyError, match="no-such-model"):
        vlmref.get_default_template_type("no-such-model")


def test_footprints_total_and_per_family() -> None:
    per_model = {m: len(get_model_meta(m).footprints) for m in MODELS.names()}
    assert sum(per_model.values()) == 16
    families = {
        "CogVLM": ["cogvlm-17b-instruct"],
        "Qwen-VL": ["qwen-vl-chat"],
        "XComposer2": ["internlm-xcomposer2-7b-chat", "internlm-xcomposer2_5-7b-chat"],
        "Yi-VL": ["yi-vl-6b-chat", "yi-vl-34b-chat"],
        "LLaVA": [m for m in SEED_TEMPLATES if "llava" in m],
    }
    assert sorted(m for ms in families.values() for m in ms) == sorted(SEED_TEMPLATES)
    counts = {f: sum(per_model[m] for m in ms) for f, ms in families.items()}
    assert counts == {"CogVLM": 2, "Qwen-VL": 3, "XComposer2": 2, "Yi-VL": 2, "LLaVA": 7}


def test_footprints_are_well_formed() -> None:
    for name in MODELS.names():
        for fp in get_model_meta(name).footprints:
            assert fp.mode in ("infer", "lora", "full")
            assert fp.gb_per_gpu > 0 and fp.gpus >= 1
            assert fp.seed.split(",")[0].endswith(".md")


def test_cogvlm_gradient_checkpointing_off_others_on() -> None:
    assert get_model_meta("cogvlm-17b-instruct").gradient_checkpointing is False
    assert get_model_meta("cogvlm-17b-chat").gradient_checkpointing is False
    others = [m for m in MODELS.names() if m != "cogvlm-17b-instruct"]
    assert all(get_model_meta(m).gradient_checkpointing for m in others)


@pytest.mark.parametrize("model_type", ["internlm-xcomposer2-7b-chat", "internlm-xcomposer2_5-7b-chat"])
def test_xcomposer_merge_lora_note_records_the_upstream_statement(model_type: str) -> None:
    """Merge works in vlmref (tests/test_export.py proves parity); the note keeps ms-swift's contrary statement."""
    meta = get_model_meta(model_type)
    assert meta.support_merge_lora is True
    assert "#448" in meta.merge_lora_note and "parity" in meta.merge_lora_note


def test_every_model_supports_merge_lora() -> None:
    assert all(get_model_meta(m).support_merge_lora for m in MODELS.names())


def test_media_options_match_template_defaults() -> None:
    assert get_model_meta("cogvlm-17b-instruct").media_options["vision_tokens"] == 1227
    assert get_model_meta("internlm-xcomposer2-7b-chat").media_options["image_tokens"] == 256
    assert get_model_meta("yi-vl-34b-chat").media_options["image_tokens"] == 1024


def test_lora_target_modules() -> None:
    assert get_default_lora_target_modules("qwen-vl-chat") == ["c_attn"]
    assert get_default_lora_target_modules("cogvlm-17b-chat")[0] == "vision_expert_query_key_value"
    assert get_default_lora_target_modules("llava-next-110b") == ["q_proj", "k_proj", "v_proj"]


def test_llava_models_allow_one_image_single_turn() -> None:
    for name in (m for m in SEED_TEMPLATES if "llava" in m):
        rules = get_model_meta(name).rules
        assert (rules.min_images, rules.max_images, rules.multi_turn) == (1, 1, False)


def test_registering_a_duplicate_model_name_raises() -> None:
    meta = get_model_meta("qwen-vl-chat")
    before = (MODELS.names(), MODELS.aliases())
    with pytest.raises(ValueError, match="already registered"):
        MODELS.register(meta.model_type, meta)
    # a new name whose alias collides with an existing alias is refused too, and nothing is half-registered
    clash = dataclasses.replace(meta, model_type="vlmref-test-model", aliases=("cogvlm-17b-chat",))
    with pytest.raises(ValueError, match="cogvlm-17b-chat"):
        MODELS.register(clash.model_type, clash, aliases=clash.aliases)
    assert (MODELS.names(), MODELS.aliases()) == before
    assert "vlmref-test-model" not in MODELS
