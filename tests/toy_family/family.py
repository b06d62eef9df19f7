"""The toy family: one model type, ``toy-vlm`` (llama2 tokenizer, at most one image per conversation)."""

from __future__ import annotations

from vlmref.models.family import FamilySpec, register_family
from vlmref.models.model_types import DatasetRules, ModelMeta, TokenizerSpec

from .media import TOY_IMAGE_TOKENS, ToyMedia
from .template import TOY

MODEL_TYPES = (
    ModelMeta(
        model_type="toy-vlm",
        aliases=(),
        ms_model_id="vlmref/toy-vlm",
        hf_model_id="vlmref/toy-vlm",
        template="toy",
        lora_target_modules=("q_proj", "v_proj"),
        tokenizer=TokenizerSpec("sentencepiece", "llama2", pad="<unk>"),
        rules=DatasetRules(max_images=1, note="at most one image per conversation"),
        architecture="toy",
        media_options={"image_tokens": TOY_IMAGE_TOKENS},
    ),
)

FAMILY = register_family(FamilySpec(
    name="toy",
    model_types=MODEL_TYPES,
    templates=(TOY,),
    media_steps={"toy": ToyMedia},
    image_processors={"toy": "toy_family.processing:ToyImageProcessor"},
    arch_module="toy_family.arch",
    source="tests/toy_family",
))
