"""The Qwen-VL family: qwen-vl-chat, and the text-only qwen template it shares ChatML with."""

from __future__ import annotations

from ..family import FamilySpec, register_family
from ..model_types import ANY_IMAGES, Footprint, ModelMeta, ModelType, TokenizerSpec
from .media import QwenVLMedia
from .template import QWEN, QWEN_VL, SWIFT_QWEN, SWIFT_QWEN_VL

MODEL_TYPES = (
    ModelMeta(
        model_type=ModelType.qwen_vl_chat,
        aliases=(),
        ms_model_id="qwen/Qwen-VL-Chat",
        hf_model_id="Qwen/Qwen-VL-Chat",
        template="qwen-vl",
        lora_target_modules=("c_attn",),
        tokenizer=TokenizerSpec("qwen-vl", "qwen", eos="<|im_end|>"),
        rules=ANY_IMAGES,
        architecture="qwen_vl",
        footprints=(
            Footprint("infer", 24, 1, "3090", "single GPU", "qwen-vl.md"),
            Footprint("lora", 23, 1, "3090", "single GPU", "qwen-vl.md, --dataset coco-en-mini"),
            Footprint("full", 70, 4, "A100", "NPROC_PER_NODE=2 over 4 GPUs (2 DDP ranks x 2-GPU device_map)",
                      "qwen-vl.md, --dataset coco-en-mini --sft_type full", world_size=2, devices_per_process=2),
        ),
    ),
)

FAMILY = register_family(FamilySpec(
    name="qwen_vl",
    model_types=MODEL_TYPES,
    templates=(QWEN, QWEN_VL, SWIFT_QWEN, SWIFT_QWEN_VL),
    media_steps={"qwen_vl": QwenVLMedia},
    image_processors={"qwen_vl": "vlmref.models.qwen_vl.processing:QwenVLImageProcessor"},
    arch_module="vlmref.models.qwen_vl.arch",
    golden_tokenizers={"qwen": ("qwen-vl-chat", TokenizerSpec("qwen", "qwen", eos="<|im_end|>"))},
    swift_attention="eager",
))
