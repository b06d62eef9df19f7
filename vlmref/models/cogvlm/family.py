"""The CogVLM family: cogvlm-17b-instruct (ms-swift 2.2.0: cogvlm-17b-chat)."""

from __future__ import annotations

from ..family import FamilySpec, register_family
from ..model_types import DatasetRules, Footprint, ModelMeta, ModelType, TokenizerSource, TokenizerSpec
from .media import COGVLM_VISION_TOKENS, CogVLMMedia, SwiftCogVLMMedia
from .template import COGVLM, SWIFT_COGVLM

MODEL_TYPES = (
    ModelMeta(
        model_type=ModelType.cogvlm_17b_instruct,
        aliases=(ModelType.cogvlm_17b_chat,),
        ms_model_id="ZhipuAI/cogvlm-chat",
        hf_model_id="THUDM/cogvlm-chat-hf",
        template="cogvlm",
        lora_target_modules=("vision_expert_query_key_value", "vision_expert_dense",
                             "language_expert_query_key_value", "language_expert_dense"),
        tokenizer=TokenizerSpec("sentencepiece", "llama2", pad="<unk>",
                                source=TokenizerSource("lmsys/vicuna-7b-v1.5", "AI-ModelScope/vicuna-7b-v1.5")),
        rules=DatasetRules(min_images=1, max_images=1, multi_turn=True,
                           note="exactly one image per conversation, in any turn; it is placed after BOS"),
        architecture="cogvlm",
        upstream_requires=("transformers<4.42",),
        gradient_checkpointing=False,
        media_options={"vision_tokens": COGVLM_VISION_TOKENS},
        footprints=(
            Footprint("infer", 38, 1, "A100", "single GPU", "cogvlm.md"),
            Footprint("lora", 50, 1, "A100", "single GPU", "cogvlm.md, --dataset coco-mini-en-2"),
        ),
        notes="tokenizer: vicuna-7b-v1.5 (ModelScope AI-ModelScope/vicuna-7b-v1.5), pad <unk>=0",
    ),
)

FAMILY = register_family(FamilySpec(
    name="cogvlm",
    model_types=MODEL_TYPES,
    templates=(COGVLM, SWIFT_COGVLM),
    media_steps={"cogvlm": CogVLMMedia, "swift_cogvlm": SwiftCogVLMMedia},
    image_processors={"cogvlm": "vlmref.models.cogvlm.processing:CogVLMImageProcessor"},
    arch_module="vlmref.models.cogvlm.arch",
    swift_attention="sdpa",
    legacy_fp32_logits=True,  # the remote modeling_cogvlm.py: logits = logits.float()
))
