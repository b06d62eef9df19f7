"""The Yi-VL family: yi-vl-6b-chat and yi-vl-34b-chat."""

from __future__ import annotations

from ..family import FamilySpec, register_family
from ..model_types import (
    A10_CLASS,
    LLAMA_QKV,
    DatasetRules,
    Footprint,
    MemoryAnchor,
    ModelMeta,
    ModelType,
    TokenizerSpec,
)
from .media import YI_VL_IMAGE_TOKENS, YiVLMedia
from .template import SWIFT_YI_VL, YI_VL

# ms-swift's example script for the 6B model (max_length 2048, batch 1, LoRA r 8 on DEFAULT, gradient checkpointing)
ANCHORS_6B = (
    MemoryAnchor("swift-script/lora", 18, 1, "V100/A10/3090",
                 "ms-swift v2.2.0 examples/pytorch/llm/scripts/yi_vl_6b_chat/lora/sft.sh",
                 "Experimental environment: V100, A10, 3090 / 18GB GPU memory (--lora_target_modules DEFAULT, "
                 "--use_flash_attn false, coco-en-2-mini)",
                 {"mode": "sft"}),
)

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
        anchors=anchors,
    )
    for model_type, ms_id, hf_id, footprints, anchors in (
        (ModelType.yi_vl_6b_chat, "01ai/Yi-VL-6B", "01-ai/Yi-VL-6B", (
            Footprint("infer", 18, 1, A10_CLASS, "single GPU", "yi-vl.md"),
            Footprint("lora", 19, 1, A10_CLASS, "single GPU", "yi-vl.md, --dataset coco-en-2-mini"),
        ), ANCHORS_6B),
        (ModelType.yi_vl_34b_chat, "01ai/Yi-VL-34B", "01-ai/Yi-VL-34B", (), ()),
    )
)

FAMILY = register_family(FamilySpec(
    name="yi_vl",
    model_types=MODEL_TYPES,
    templates=(YI_VL, SWIFT_YI_VL),
    media_steps={"yi_vl": YiVLMedia},
    image_processors={"yi_vl": "vlmref.models.yi_vl.processing:YiVLImageProcessor"},
    arch_module="vlmref.models.yi_vl.arch",
    legacy_fp32_logits=True,  # Yi's LlavaLlamaForCausalLM runs transformers 4.4x LlamaForCausalLM.forward: logits.float()
))
