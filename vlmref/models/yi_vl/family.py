"""The Yi-VL family: yi-vl-6b-chat and yi-vl-34b-chat."""

from __future__ import annotations

from ..family import FamilySpec, register_family
from ..model_types import A10_CLASS, LLAMA_QKV, DatasetRules, Footprint, ModelMeta, ModelType, TokenizerSpec
from .media import YI_VL_IMAGE_TOKENS, YiVLMedia
from .template import SWIFT_YI_VL, YI_VL

MODEL_TYPES = tuple(
    ModelMeta(
        model_type=model_type,
        aliases=(),
        ms_model_id=ms_id,
        hf_model_id=hf_id,
        template="yi-vl",
        lora_target_modules=LLAMA_QKV,
        tokenizer=TokenizerSpec("sentencepiece", "yi"),
        rules=DatasetRules(max_images_per_turn=1, multi_turn=True,
                           note="multi-turn; each turn has one image or none (one images entry per turn)"),
        architecture="yi_vl",
        upstream_requires=("transformers>=4.34",),
        media_options={"image_tokens": YI_VL_IMAGE_TOKENS},
        footprints=footprints,
    )
    for model_type, ms_id, hf_id, footprints in (
        (ModelType.yi_vl_6b_chat, "01ai/Yi-VL-6B", "01-ai/Yi-VL-6B", (
            Footprint("infer", 18, 1, A10_CLASS, "single GPU", "yi-vl.md"),
            Footprint("lora", 19, 1, A10_CLASS, "single GPU", "yi-vl.md, --dataset coco-en-2-mini"),
        )),
        (ModelType.yi_vl_34b_chat, "01ai/Yi-VL-34B", "01-ai/Yi-VL-34B", ()),
    )
)

FAMILY = register_family(FamilySpec(
    name="yi_vl",
    model_types=MODEL_TYPES,
    templates=(YI_VL, SWIFT_YI_VL),
    media_steps={"yi_vl": YiVLMedia},
    image_processors={"yi_vl": "vlmref.models.yi_vl.processing:YiVLImageProcessor"},
    arch_module="vlmref.models.yi_vl.arch",
))
