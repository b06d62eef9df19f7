"""LLaVA-NeXT: llava-hf v1.6 (Mistral-7B, Nous-Hermes-2-Yi-34B) and lmms-lab (Llama-3-8B, Qwen1.5-72B/110B).

One model class for all five (transformers' ``LlavaNextForConditionalGeneration`` + the vlmref contract). Parameters
group as ``vision_tower`` (CLIP ViT-L/14-336, all 24 layers + post_layernorm although layer -2 is used),
``projector`` (mlp2x_gelu + the learned ``image_newline``), ``language_model`` (embeddings, decoder, final norm)
and ``lm_head``::

    >>> from vlmref.models.arch import get_arch
    >>> get_arch("llava-next-110b").components["projector"]
    ('model.multi_modal_projector', 'model.image_newline')
"""

from __future__ import annotations

from typing import Any

from ..arch import ArchSpec, register_arch
from .config import (
    LLAMA3_LLAVA_NEXT_8B,
    LLAVA_NEXT_72B,
    LLAVA_NEXT_110B,
    LLAVA_V16_34B,
    LLAVA_V16_MISTRAL_7B,
    TINY_HF,
    TINY_ORIGINAL,
    LlavaNextConfig,
)
from .keys import ORIGINAL_KEY_MAPPING
from .modeling import LlavaNextForCausalLM

COMPONENTS = {
    "vision_tower": ("model.vision_tower",),
    "projector": ("model.multi_modal_projector", "model.image_newline"),
    "language_model": ("model.language_model",),
    "lm_head": ("lm_head",),
}


def adapt_to_tokenizer(config: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """Use the tokenizer's ``<image>`` id (e.g. 64003 for a llava-yi tokenizer saved by transformers 4.42)."""
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    if image_id is None or image_id == getattr(tokenizer, "unk_token_id", None):
        raise ValueError("the tokenizer has no <image> token")
    return {**config, "image_token_index": int(image_id)}


_SOURCE_HF = ("config: {repo} config.json (see vlmref/models/llava_next/config.py); modules: transformers 5 "
              "LlavaNextForConditionalGeneration; checkpoint keys: transformers' llava_next conversion mapping")
_SOURCE_ORIGINAL = ("config: {repo} original LLaVA-NeXT config.json (flat LLM + mm_* fields, converted); modules: "
                    "transformers 5 LlavaNextForConditionalGeneration; checkpoint keys: LLaVA-NeXT llava_arch.py tree "
                    "-> keys.ORIGINAL_KEY_MAPPING -> transformers' mapping")
_NOTE_LORA = ("LoRA DEFAULT q_proj/k_proj/v_proj matches by peft suffix the LLM attention AND the CLIP tower's "
              "self_attn.q_proj/k_proj/v_proj (24 layers x 3)")

# ORIGINAL_KEY_MAPPING only matches original LLaVA-NeXT names, so it is harmless on llava-hf / vlmref-saved folders;
# ``LlavaNextForCausalLM.from_pretrained`` also adds it by itself when the folder's config.json is original
for _model_type, _config, _tiny, _repo, _source, _keys in (
    ("llava1d6-mistral-7b-instruct", LLAVA_V16_MISTRAL_7B, TINY_HF, "llava-hf/llava-v1.6-mistral-7b-hf", _SOURCE_HF, None),
    ("llava1d6-yi-34b-instruct", LLAVA_V16_34B, TINY_HF, "llava-hf/llava-v1.6-34b-hf", _SOURCE_HF, None),
    ("llama3-llava-next-8b", LLAMA3_LLAVA_NEXT_8B, TINY_ORIGINAL, "lmms-lab/llama3-llava-next-8b", _SOURCE_ORIGINAL,
     ORIGINAL_KEY_MAPPING),
    ("llava-next-72b", LLAVA_NEXT_72B, TINY_ORIGINAL, "lmms-lab/llava-next-72b", _SOURCE_ORIGINAL, ORIGINAL_KEY_MAPPING),
    ("llava-next-110b", LLAVA_NEXT_110B, TINY_ORIGINAL, "lmms-lab/llava-next-110b", _SOURCE_ORIGINAL,
     ORIGINAL_KEY_MAPPING),
):
    register_arch(ArchSpec(
        model_type=_model_type,
        family="llava_next",
        config_class=LlavaNextConfig,
        model_class=LlavaNextForCausalLM,
        full_config=_config,
        tiny_overrides=_tiny,
        components=COMPONENTS,
        upstream_keys=_model_type,
        source=_source.format(repo=_repo),
        key_mapping=_keys,
        adapt_to_tokenizer=adapt_to_tokenizer,
        notes=(_NOTE_LORA,),
    ))

__all__ = ["COMPONENTS", "ORIGINAL_KEY_MAPPING", "LlavaNextConfig", "LlavaNextForCausalLM", "adapt_to_tokenizer"]
