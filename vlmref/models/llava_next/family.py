"""The LLaVA-NeXT family: llava-hf v1.6 (mistral-7b, 34b) and lmms-lab (llama3-8b, 72b, 110b) checkpoints."""

from __future__ import annotations

from ..family import FamilySpec, register_family
from ..model_types import A10_CLASS, LLAMA_QKV, DatasetRules, Footprint, ModelMeta, ModelType, TokenizerSpec
from .image_tokens import LLAVA_NEXT_GRID_PINPOINTS
from .media import LlavaNextMedia
from .template import (
    LLAMA_LLAVA_NEXT,
    LLAVA_MISTRAL,
    LLAVA_QWEN,
    LLAVA_YI,
    SWIFT_LLAMA_LLAVA_NEXT,
    SWIFT_LLAVA_MISTRAL,
    SWIFT_LLAVA_QWEN,
    SWIFT_LLAVA_YI,
)

LLAVA_RULES = DatasetRules(
    min_images=1, max_images=1, max_images_per_turn=1, multi_turn=False, note="single turn with exactly one image"
)
LLAVA_MEDIA = {"image_grid_pinpoints": LLAVA_NEXT_GRID_PINPOINTS}

LMMS_LAB = tuple(
    ModelMeta(
        model_type=model_type,
        aliases=(),
        ms_model_id=ms_id,
        hf_model_id=hf_id,
        template=template,
        lora_target_modules=LLAMA_QKV,
        tokenizer=tokenizer,
        rules=LLAVA_RULES,
        architecture="llava_next",
        media_options=LLAVA_MEDIA,
    )
    for model_type, ms_id, hf_id, template, tokenizer in (
        (ModelType.llama3_llava_next_8b, "AI-Modelscope/llama3-llava-next-8b", "lmms-lab/llama3-llava-next-8b",
         "llama-llava-next", TokenizerSpec("tokenizer_json", "llama3", add_tokens=("<image>",))),
        (ModelType.llava_next_72b, "AI-Modelscope/llava-next-72b", "lmms-lab/llava-next-72b",
         "llava-qwen-instruct", TokenizerSpec("tokenizer_json", "qwen1.5", add_tokens=("<image>",))),
        (ModelType.llava_next_110b, "AI-Modelscope/llava-next-110b", "lmms-lab/llava-next-110b",
         "llava-qwen-instruct", TokenizerSpec("tokenizer_json", "qwen1.5", add_tokens=("<image>",))),
    )
)

MODEL_TYPES = (
    ModelMeta(
        model_type=ModelType.llava1d6_mistral_7b_instruct,
        aliases=(ModelType.llava1_6_mistral_7b_instruct,),
        ms_model_id="huangjintao/llava-v1.6-mistral-7b-hf",
        hf_model_id="llava-hf/llava-v1.6-mistral-7b-hf",
        template="llava-mistral",
        lora_target_modules=LLAMA_QKV,
        tokenizer=TokenizerSpec("tokenizer_json", "mistral", pad="<pad>", add_tokens=("<image>", "<pad>")),
        rules=LLAVA_RULES,
        architecture="llava_next",
        upstream_requires=("transformers>=4.39",),
        media_options=LLAVA_MEDIA,
        footprints=(
            Footprint("infer", 20, 1, "A100", "single GPU", "llava.md"),
            Footprint("lora", 21, 1, A10_CLASS, "single GPU", "llava.md, --dataset coco-en-2-mini"),
            Footprint("full", 70, 4, "A100", "NPROC_PER_NODE=4, --deepspeed default-zero2",
                      "llava.md, --dataset coco-en-2-mini --sft_type full", deepspeed="zero2", world_size=4),
        ),
    ),
    ModelMeta(
        model_type=ModelType.llava1d6_yi_34b_instruct,
        aliases=(ModelType.llava1_6_yi_34b_instruct,),
        ms_model_id="huangjintao/llava-v1.6-34b-hf",
        hf_model_id="llava-hf/llava-v1.6-34b-hf",
        template="llava-yi",
        lora_target_modules=LLAMA_QKV,
        # llava-hf/llava-v1.6-34b-hf: <image> 64000 and <pad> 64001 are added tokens, its pad_token is <pad>
        tokenizer=TokenizerSpec("sentencepiece", "yi", eos="<|im_end|>", pad="<pad>", add_tokens=("<image>", "<pad>")),
        rules=LLAVA_RULES,
        architecture="llava_next",
        upstream_requires=("transformers>=4.39",),
        media_options=LLAVA_MEDIA,
        footprints=(
            Footprint("infer", 70, 1, "A100", "single GPU", "llava.md"),
            Footprint("infer", 20, 4, "A100", "device_map over 4 GPUs", "llava.md", devices_per_process=4),
            Footprint("lora", 45, 2, "A100", "device_map over 2 GPUs", "llava.md, --dataset coco-en-2-mini",
                      devices_per_process=2),
            Footprint("full", 50, 8, "A100", "device_map over 8 GPUs, no DeepSpeed",
                      "llava.md, --dataset coco-en-2-mini --sft_type full", devices_per_process=8),
        ),
    ),
    *LMMS_LAB,
)

FAMILY = register_family(FamilySpec(
    name="llava_next",
    model_types=MODEL_TYPES,
    templates=(LLAVA_MISTRAL, LLAVA_YI, LLAMA_LLAVA_NEXT, LLAVA_QWEN,
               SWIFT_LLAVA_MISTRAL, SWIFT_LLAVA_YI, SWIFT_LLAMA_LLAVA_NEXT, SWIFT_LLAVA_QWEN),
    media_steps={"llava_next": LlavaNextMedia},
    image_processors={"llava_next": "vlmref.models.llava_next.processing:LlavaNextImageProcessor"},
    arch_module="vlmref.models.llava_next.arch",
    legacy_fp32_logits=True,  # transformers 4.4x MistralForCausalLM / LlamaForCausalLM: logits = logits.float()
))
