"""InternLM-XComposer2-7B and IXC-2.5-7B (``internlm-xcomposer2-7b-chat``, ``internlm-xcomposer2_5-7b-chat``).

>>> from vlmref.models.arch import get_arch
>>> spec = get_arch("internlm-xcomposer2_5-7b-chat")
>>> spec.model_class.__name__, spec.upstream_keys, spec.components["projector"]
('InternLMXComposer2ForCausalLM', 'internlm-xcomposer2_5-7b-chat', ('vision_proj', 'plora_glb_GN', 'plora_sub_GN'))
"""

from __future__ import annotations

from typing import Any

from ..arch import ArchSpec, register_arch
from .config import IXC2_5_7B, IXC2_7B, TINY, TINY_2_5, InternLMXComposer2Config
from .modeling import InternLMXComposer2ForCausalLM


def _adapt_to_tokenizer(config: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """Keep the upstream ids (bos 1, eos 2, pad 2): pad_token_id is the embedding's padding_idx (a row without
    gradient), and the tokenizer's pad (= ms-swift's eos [UNUSED_TOKEN_145], 92542) must not become it."""
    size = len(tokenizer) if hasattr(tokenizer, "__len__") else None
    if size is not None and size > config["vocab_size"]:
        raise ValueError(f"tokenizer has {size} tokens, the model's vocabulary {config['vocab_size']}")
    return dict(config)


_LM = ("model",)  # tok_embeddings, 32 layers (PLoRA included: it is part of each projection), norm
_SOURCE = ("modeling_internlm2.py / modeling_internlm_xcomposer2.py / build_mlp.py: PaddleMIX InternLM-XComposer2 "
           "port (IXC2-7b, resize_pos 24->16), InternLM/InternLM-XComposer OmniLive base copy + mindnlp port of the "
           "IXC-2.5 build_mlp.py, lmdeploy vl/model/xcomposer2.py and vl/tools/merge_xcomposer2d5_task.py")
_PLORA_NOTES = (
    "PLoRA (r=256, alpha=256, dropout 0.05) on wqkv/wo/w1/w2/w3 acts only where im_mask is True; it is counted in "
    "language_model (parameters inside model.layers)",
    "wqkv is packed per kv group: (kv_heads, groups + 2, head_dim) = 8 x (4 q, 1 k, 1 v) x 128",
    "vision tower has no post_layernorm (absent from the released checkpoints; upstream uses hidden_states[-1])",
    "peft freezes only names without 'lora_': Plora_A/Plora_B (and IXC-2.5's lora_web/sft/dpo) stay trainable "
    "under ms-swift 2.2.0 LoRA (fixed by ms-swift #1559)",
)

register_arch(ArchSpec(
    model_type="internlm-xcomposer2-7b-chat",
    family="internlm_xcomposer2",
    config_class=InternLMXComposer2Config,
    model_class=InternLMXComposer2ForCausalLM,
    full_config=IXC2_7B,
    tiny_overrides=TINY,
    components={"vision_tower": ("vit",), "projector": ("vision_proj",), "language_model": _LM, "lm_head": ("output",)},
    upstream_keys="internlm-xcomposer2-7b-chat",
    source="internlm/internlm-xcomposer2-7b config.json (HF main 194829f); " + _SOURCE,
    lora_all_exclude=("Plora_A", "Plora_B"),
    adapt_to_tokenizer=_adapt_to_tokenizer,
    notes=_PLORA_NOTES + ("224-px CLIP ViT-L/14 (position embeddings 16x16+1) -> 256 image positions",),
))

register_arch(ArchSpec(
    model_type="internlm-xcomposer2_5-7b-chat",
    family="internlm_xcomposer2",
    config_class=InternLMXComposer2Config,
    model_class=InternLMXComposer2ForCausalLM,
    full_config=IXC2_5_7B,
    tiny_overrides=TINY_2_5,
    components={"vision_tower": ("vit",), "projector": ("vision_proj", "plora_glb_GN", "plora_sub_GN"),
                "language_model": _LM, "lm_head": ("output",)},
    upstream_keys="internlm-xcomposer2_5-7b-chat",
    source="internlm/internlm-xcomposer2d5-7b config.json (HF refs/pr/1); " + _SOURCE,
    lora_all_exclude=("Plora_A", "Plora_B", "lora_web_A", "lora_web_B", "lora_sft_A", "lora_sft_B", "lora_dpo_A",
                      "lora_dpo_B"),
    adapt_to_tokenizer=_adapt_to_tokenizer,
    notes=_PLORA_NOTES + (
        "560-px tiles + a global view through a 560-px CLIP ViT-L/14, 2x2 merge, plora_sub_GN after every row and "
        "plora_glb_GN between the global view and the tiles: (rows*cols + 1) * 400 + 1 + (rows + 1) * 20 positions",
        "task adapters lora_web (r 512) and lora_sft/lora_dpo (r 256) in every PLoRA: ranks inferred; used only with "
        "task='web' / 'write'",
    ),
))

__all__ = ["IXC2_5_7B", "IXC2_7B", "TINY", "TINY_2_5", "InternLMXComposer2Config", "InternLMXComposer2ForCausalLM"]
