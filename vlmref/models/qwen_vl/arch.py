"""Qwen-VL-Chat (model type ``qwen-vl-chat``): Qwen-7B decoder + ViT-bigG/14 @ 448 px + 256-query resampler.

>>> from vlmref.models.arch import get_arch
>>> spec = get_arch("qwen-vl-chat")
>>> model = spec.model_class(spec.build_config(tiny=True))  # doctest: +SKIP
>>> model(**collator([template.encode(example)])).loss  # doctest: +SKIP

Parameter groups (the paper's split, arXiv:2308.12966 Table 1: ViT 1.9B, VL adapter 0.08B, LLM 7.7B, total 9.6B):
``vision_tower`` = the ViT incl. ``ln_post`` and the final ``proj`` (4096 x 4096): 1,859,556,096 params -> "1.9B";
``projector`` = the resampler ``attn_pool``: 76,054,528 -> "0.08B" (with ``proj`` it would be 92.8M -> "0.09B");
``language_model`` + ``lm_head``: 7,098,994,688 + 622,329,856 = 7.72B -> "7.7B"; total 9,656,935,168 (+0.59%).
``language_model`` = ``wte``, ``h``, ``ln_f``; ``lm_head`` is untied.

Deviations from upstream (HF remote code ``modeling_qwen.py`` / ``visual.py``):

* Images: upstream decodes the file path / URL from the ids between ``<img>`` and ``</img>`` and loads the image
  inside ``forward`` (``Resize((448, 448), BICUBIC)``, ``ToTensor``, CLIP ``Normalize``). vlmref takes
  ``pixel_values`` from the collator (``vlmref.datasets.processors.QWenVLImageProcessor``: the same 448 x 448
  bicubic resize and CLIP mean/std) and writes their features over the same 256 positions; ``<img>`` spans without
  ``pixel_values`` raise ``ImageSpanError`` instead of reading files.
* Positions: upstream's rotary and logn factors use the cache position (it ignores ``position_ids``); vlmref uses
  ``position_ids`` (default: the cache positions). They differ only with left padding, where vlmref gives each row
  the positions of its unpadded sequence (RoPE is relative, so attention scores match up to rounding anyway; logn
  differs only beyond ``seq_length``).
* Dynamic NTK alpha is computed, as upstream, from the padded prefill length and cached on ``transformer.ntk_alpha``
  for decode steps and training; logn scaling is eval-only as upstream. Neither does anything up to 2048 tokens.
* Training without images: the zero-image dummy pass (upstream, for DDP/ZeRO) runs only if the ViT is trainable.
* Attention is SDPA (upstream: eager matmul/softmax or flash-attn); the config's bf16/fp16/fp32 flags are ignored
  (dtype comes from ``from_pretrained(dtype=...)``); ``use_flash_attn`` is not used.
"""

from __future__ import annotations

from ..arch import ArchSpec, register_arch
from .config import QWEN_VL_CHAT, TINY, QWenVLConfig
from .images import ImageSpanError, find_image_spans
from .modeling import QWenModel, QWenVLForCausalLM
from .vision import QWenVisionTransformer, Resampler

COMPONENTS = {
    "vision_tower": (
        "transformer.visual.conv1",
        "transformer.visual.positional_embedding",
        "transformer.visual.ln_pre",
        "transformer.visual.transformer",
        "transformer.visual.ln_post",
        "transformer.visual.proj",
    ),
    "projector": ("transformer.visual.attn_pool",),
    "language_model": ("transformer.wte", "transformer.h", "transformer.ln_f"),
    "lm_head": ("lm_head",),
}

SPEC = register_arch(ArchSpec(
    model_type="qwen-vl-chat",
    family="qwen_vl",
    config_class=QWenVLConfig,
    model_class=QWenVLForCausalLM,
    full_config=QWEN_VL_CHAT,
    tiny_overrides=TINY,
    components=COMPONENTS,
    upstream_keys="qwen-vl-chat",
    source=(
        "Qwen/Qwen-VL-Chat config.json (verbatim third-party copy; same values in the Qwen-VL-Chat-Int4 config.json "
        "mirrored at github.com/x1ngzai/Qwen-VL-Chat-Int4@1cd721a); modeling_qwen.py / visual.py / "
        "configuration_qwen.py of that mirror; keys: its model.safetensors.index.json"
    ),
    # ALL = ms-swift's find_all_linears, nothing excluded: it also lists the resampler's MultiheadAttention out_proj,
    # which peft wraps but torch's MultiheadAttention bypasses (it reads out_proj.weight directly) -> trains nothing.
    notes=(
        "pixel_values from the collator instead of image paths decoded from input_ids",
        "rotary/logn use position_ids (upstream: cache positions); identical without left padding",
    ),
))

__all__ = [
    "COMPONENTS",
    "QWEN_VL_CHAT",
    "SPEC",
    "TINY",
    "ImageSpanError",
    "QWenModel",
    "QWenVLConfig",
    "QWenVLForCausalLM",
    "QWenVisionTransformer",
    "Resampler",
    "find_image_spans",
]
