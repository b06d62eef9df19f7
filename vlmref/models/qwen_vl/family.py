"""The Qwen-VL family: qwen-vl-chat, and the text-only qwen template it shares ChatML with."""

from __future__ import annotations

from ..family import FamilySpec, register_family
from ..model_types import ANY_IMAGES, Footprint, MemoryAnchor, ModelMeta, ModelType, TokenizerSpec
from .media import QwenVLMedia
from .template import QWEN, QWEN_VL, SWIFT_QWEN, SWIFT_QWEN_VL

SWIFT_SCRIPTS = "ms-swift v2.2.0 examples/pytorch/llm/scripts/qwen_vl_chat"
QWEN_README = "QwenLM/Qwen-VL README.md"
# Qwen's finetune.py pads every sample to --model_max_length, and 258 of those positions are the image's
# <img> + 256 features + </img>: a sequence length of N is max_length N - 258 text positions, filled
QWEN_IMAGE_POSITIONS = 258
# Qwen's finetune/finetune_lora_single_gpu.sh on the chat model: finetune.py's LoRA defaults (r 64, alpha 16, these
# targets), bf16, batch 1, gradient checkpointing, the ViT frozen (fix_vit)
QWEN_LORA = {"lora_rank": 64, "lora_alpha": 16, "lora_target_modules": ("c_attn", "attn.c_proj", "w1", "w2"),
             "text_tokens": None, "gradient_checkpointing": True}

ANCHORS = (
    MemoryAnchor("swift-script/lora", 21, 1, "V100/A10/3090", f"{SWIFT_SCRIPTS}/lora/sft.sh",
                 "Experimental environment: V100, A10, 3090 / 21GB GPU memory (--lora_target_modules DEFAULT, "
                 "--use_flash_attn false, coco-en-mini)",
                 {"mode": "sft"}),
    MemoryAnchor("swift-script/lora_ddp_ds", 21, 2, "A10", f"{SWIFT_SCRIPTS}/lora_ddp_ds/sft.sh",
                 "Experimental environment: 2 * A10 / 2 * 21GB GPU memory (torchrun 2 ranks, --deepspeed "
                 "default-zero2, --lora_target_modules c_attn attn.c_proj)",
                 {"mode": "sft", "lora_target_modules": ("c_attn", "attn.c_proj"), "world_size": 2,
                  "deepspeed": "zero2"}),
    MemoryAnchor("swift-script/full_mp", 55, 2, "A100", f"{SWIFT_SCRIPTS}/full_mp/sft.sh",
                 "Experimental environment: 2 * A100 / 2 * 55GB GPU memory (CUDA_VISIBLE_DEVICES=0,1, --sft_type full, "
                 "--use_flash_attn true)",
                 # flash attention keeps no (heads, L, L) matrix, as SDPA's fused kernels
                 {"mode": "sft", "sft_type": "full", "devices_per_process": 2, "attention": "sdpa"}),
    MemoryAnchor("swift-script/qlora", 10, 1, "A10", f"{SWIFT_SCRIPTS}/qlora/sft.sh",
                 "Experimental environment: A10 / 10GB GPU memory (--quantization_bit 4, --lora_target_modules "
                 "c_attn attn.c_proj)",
                 {"mode": "sft", "lora_target_modules": ("c_attn", "attn.c_proj")},
                 not_modelled="bitsandbytes 4-bit weights: vlmref sft refuses --quantization_bit, so there is no "
                              "vlmref run to trace"),
    MemoryAnchor("qwen-readme/lora-384", 23.3, 1, "A100-SXM4-80G",
                 f"{QWEN_README}, Profiling of Memory and Speed (finetune/finetune_lora_single_gpu.sh)",
                 "LoRA (Chat), sequence length 384: 23.3G / 2.2s/it (batch size 1, each sample with an image)",
                 {"mode": "sft", "max_length": 384 - QWEN_IMAGE_POSITIONS, **QWEN_LORA}),
    MemoryAnchor("qwen-readme/lora-2048", 27.3, 1, "A100-SXM4-80G",
                 f"{QWEN_README}, Profiling of Memory and Speed (finetune/finetune_lora_single_gpu.sh)",
                 "LoRA (Chat), sequence length 2048: 27.3G / 5.9s/it (batch size 1, each sample with an image)",
                 {"mode": "sft", "max_length": 2048 - QWEN_IMAGE_POSITIONS, **QWEN_LORA}),
    MemoryAnchor("qwen-readme/infer-2048", 22.60, 1, "A100-SXM4-80G", f"{QWEN_README}, GPU Memory Usage (profile_mm.py)",
                 "BF16, peak usage for encoding 2048 tokens (including an image) and generating a single token: "
                 "22.60GB",
                 {"mode": "infer", "max_length": 2048 - QWEN_IMAGE_POSITIONS, "text_tokens": None, "new_tokens": 1}),
)

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
        anchors=ANCHORS,
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
