"""The InternLM-XComposer2 family: internlm-xcomposer2-7b-chat and internlm-xcomposer2_5-7b-chat."""

from __future__ import annotations

from ..family import FamilySpec, register_family
from ..model_types import A10_CLASS, ANY_IMAGES, Footprint, MemoryAnchor, ModelMeta, ModelType, TokenizerSpec
from .media import XCOMPOSER2_IMAGE_TOKENS, SwiftXComposer2Media, XComposer2_5Media, XComposer2Media
from .template import SWIFT_XCOMPOSER2, XCOMPOSER2, XCOMPOSER2_5

_XCOMPOSER = dict(
    aliases=(),
    lora_target_modules=("wqkv",),
    tokenizer=TokenizerSpec("sentencepiece", "internlm2", eos="[UNUSED_TOKEN_145]"),
    rules=ANY_IMAGES,
    architecture="internlm_xcomposer2",
    support_merge_lora=True,
    merge_lora_note=("ms-swift documents merge-lora as unsupported here ('该模型不支持merge-lora'; ms-swift#448: a merged "
                     "model produced NaN/<unk>). vlmref merges it: the LoRA folds into the PLoRA layer's base weight "
                     "exactly, the built-in Plora_A/B (image positions only) stay untouched; parity is tested"),
)
MODEL_TYPES = (
    ModelMeta(
        model_type=ModelType.internlm_xcomposer2_7b_chat,
        ms_model_id="Shanghai_AI_Laboratory/internlm-xcomposer2-7b",
        hf_model_id="internlm/internlm-xcomposer2-7b",
        template="internlm-xcomposer2",
        media_options={"image_tokens": XCOMPOSER2_IMAGE_TOKENS},
        footprints=(
            Footprint("infer", 21, 1, A10_CLASS, "single GPU", "internlm-xcomposer2.md"),
            Footprint("lora", 21, 1, A10_CLASS, "single GPU", "internlm-xcomposer2.md, --dataset coco-en-mini"),
        ),
        anchors=(
            MemoryAnchor("swift-script/lora", 21, 1, "V100/A10/3090",
                         "ms-swift v2.2.0 examples/pytorch/llm/scripts/internlm_xcomposer2_7b_chat/lora/sft.sh",
                         "Experimental environment: V100, A10, 3090 / 21GB GPU memory (--lora_target_modules DEFAULT, "
                         "--use_flash_attn false, coco-en-mini)",
                         {"mode": "sft"}),
        ),
        notes="config.json img_size 224 -> 16x16 = 256 image tokens (InternLM/InternLM-XComposer#492, finetune README)",
        **_XCOMPOSER,
    ),
    ModelMeta(
        model_type=ModelType.internlm_xcomposer2_5_7b_chat,
        ms_model_id="Shanghai_AI_Laboratory/internlm-xcomposer2d5-7b",
        hf_model_id="internlm/internlm-xcomposer2d5-7b",
        template="internlm-xcomposer2_5",
        notes="registered in ms-swift 2.2.1 (not 2.2.0); eos <|im_end|> is the same id (92542) as [UNUSED_TOKEN_145]",
        **_XCOMPOSER,
    ),
)

FAMILY = register_family(FamilySpec(
    name="internlm_xcomposer2",
    model_types=MODEL_TYPES,
    templates=(XCOMPOSER2, XCOMPOSER2_5, SWIFT_XCOMPOSER2),
    media_steps={"xcomposer2": XComposer2Media, "xcomposer2_5": XComposer2_5Media, "swift_xcomposer2": SwiftXComposer2Media},
    image_processors={"xcomposer2": "vlmref.models.internlm_xcomposer2.processing:XComposer2ImageProcessor",
                      "xcomposer2_5": "vlmref.models.internlm_xcomposer2.processing:XComposer2_5ImageProcessor"},
    arch_module="vlmref.models.internlm_xcomposer2.arch",
    swift_attention="eager",
    legacy_fp32_logits=True,  # the remote modeling_internlm_xcomposer2.py: logits = logits.float()
))
