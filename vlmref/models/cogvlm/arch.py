"""CogVLM-17B chat (``cogvlm-17b-instruct``, ms-swift alias ``cogvlm-17b-chat``): vlmref's own implementation.

>>> SPEC.model_class.__name__, SPEC.upstream_keys  # also vlmref.models.arch.get_arch("cogvlm-17b-chat")
('CogVLMForCausalLM', 'cogvlm-17b-instruct')
"""

from __future__ import annotations

from typing import Any

from ..arch import ArchSpec, register_arch
from .config import COGVLM_CHAT, TINY_COGVLM, CogVLMConfig
from .modeling import CogVLMForCausalLM, CogVLMModel


def _adapt_to_tokenizer(config: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """Special ids from the tokenizer (vicuna: pad <unk> 0, bos 1, eos 2); the vocabulary size stays 32000."""
    out = dict(config)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, key, None)
        if value is not None:
            out[key] = int(value)
    return out


SPEC = register_arch(
    ArchSpec(
        model_type="cogvlm-17b-instruct",
        family="cogvlm",
        config_class=CogVLMConfig,
        model_class=CogVLMForCausalLM,
        full_config=COGVLM_CHAT,
        tiny_overrides=TINY_COGVLM,
        components={
            "vision_tower": ("model.vision.patch_embedding", "model.vision.transformer"),
            "projector": ("model.vision.linear_proj", "model.vision.boi", "model.vision.eoi"),
            # the per-layer visual experts live inside the decoder layers, so they count as language_model here
            "language_model": ("model.embed_tokens", "model.layers", "model.norm"),
            "lm_head": ("lm_head",),
        },
        upstream_keys="cogvlm-17b-instruct",
        source=(
            "THUDM/cogvlm-chat-hf config.json @ main (blame 4c1034a/caae4ce); modeling_cogvlm.py + visual.py of the "
            "same repo, read through mindspore-lab/mindnlp mindnlp/transformers/models/cogvlm/ and the unmerged "
            "huggingface/transformers src/transformers/models/cogvlm/ port (keys and shapes identical)"
        ),
        adapt_to_tokenizer=_adapt_to_tokenizer,
        notes=(
            "image positions: token_type_ids == 1 (boi + 1225 patches + eoi = 1227, right after BOS)",
            "vision expert on an image position followed by another image position (boi and patches; eoi is text)",
            "rotary ids: all 1225 patches share one id; boi/eoi count as text (upstream build_position_ids)",
            "self_attn.rotary_emb.inv_freq: upstream's persistent buffer, kept for key parity; RoPE is recomputed in "
            "float32 and a checkpoint without the key loads too",
        ),
    )
)

__all__ = ["COGVLM_CHAT", "SPEC", "TINY_COGVLM", "CogVLMConfig", "CogVLMForCausalLM", "CogVLMModel"]
