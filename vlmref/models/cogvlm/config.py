"""CogVLM-17B chat configuration: the upstream ``config.json`` field names, the full values and the tiny overrides.

``CogVLMConfig.from_pretrained(dir)`` reads a real THUDM/cogvlm-chat-hf (or ModelScope ZhipuAI/cogvlm-chat)
``config.json``: the LLM fields at top level, the EVA2-CLIP-E tower in the plain dict ``vision_config``.

>>> cfg = CogVLMConfig(**TINY_COGVLM)
>>> cfg.hidden_size, cfg.vision_config["image_size"], cfg.vision_tokens
(64, 490, 1227)
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

# Values fixed in the upstream code rather than in config.json (modeling_cogvlm.py / visual.py of
# THUDM/cogvlm-chat-hf, mirrored by mindspore-lab/mindnlp mindnlp/transformers/models/cogvlm/ and the unmerged
# huggingface/transformers src/transformers/models/cogvlm/ port) [read]:
ROPE_BASE = 10000.0  # RotaryEmbedding(head_dim) default base; rotate-half (GPT-NeoX) layout
ADAPTER_NORM_EPS = 1e-5  # GLU adapter ``norm1 = nn.LayerNorm(hidden_size)``: torch's default eps
LANGUAGE_TOKEN_TYPE = 0
VISION_TOKEN_TYPE = 1

_SRC = "THUDM/cogvlm-chat-hf config.json @ main (blame 4c1034a/caae4ce, 'update to chat-v1.1') [read]"

# The full model, in the upstream config.json's field names; every value [read] from _SRC unless noted.
COGVLM_CHAT: dict[str, Any] = {
    "vocab_size": 32000,  # _SRC (vicuna-7b-v1.5 vocabulary)
    "hidden_size": 4096,  # _SRC
    "intermediate_size": 11008,  # _SRC; also the GLU adapter's width (visual.py GLU uses config.intermediate_size)
    "num_hidden_layers": 32,  # _SRC
    "num_attention_heads": 32,  # _SRC (MHA: no kv-head field; head_dim 128)
    "hidden_act": "silu",  # _SRC
    "max_position_embeddings": 2048,  # _SRC
    "initializer_range": 0.02,  # _SRC
    "rms_norm_eps": 1e-05,  # _SRC (the remote config class default is 1e-6; the file sets 1e-5)
    "template_version": "chat",  # _SRC
    "pad_token_id": 0,  # _SRC
    "bos_token_id": 1,  # _SRC
    "eos_token_id": 2,  # _SRC
    "tie_word_embeddings": False,  # _SRC
    "use_cache": True,  # _SRC
    "torch_dtype": "bfloat16",  # _SRC
    "vision_config": {  # _SRC "vision_config" (EVA2-CLIP-E with its last layer removed)
        "dropout_prob": 0.0,
        "hidden_act": "gelu",
        "hidden_size": 1792,
        "image_size": 490,
        "in_channels": 3,
        "intermediate_size": 15360,
        "layer_norm_eps": 1e-06,
        "num_heads": 16,
        "num_hidden_layers": 63,
        "num_positions": 1226,  # 35 x 35 patches + CLS
        "patch_size": 14,
    },
}

# Tiny: real vocabulary and image geometry (490 px, patch 14 -> 1225 patches, 1226 positions, 1227 LLM positions
# per image), small widths and depths.
TINY_COGVLM: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "torch_dtype": "float32",
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_heads": 4},
}


class CogVLMConfig(PretrainedConfig):
    """LLM fields at top level, the vision tower in the dict ``vision_config`` (as upstream); defaults = chat-hf."""

    model_type = "cogvlm"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        vocab_size: int = 32000,
        hidden_size: int = 4096,
        intermediate_size: int = 11008,
        num_hidden_layers: int = 32,
        num_attention_heads: int = 32,
        hidden_act: str = "silu",
        max_position_embeddings: int = 2048,
        initializer_range: float = 0.02,
        rms_norm_eps: float = 1e-5,
        template_version: str = "chat",
        vision_config: dict[str, Any] | None = None,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | None = 2,
        tie_word_embeddings: bool = False,
        use_cache: bool = True,
        **kwargs: Any,
    ) -> None:
        if "torch_dtype" in kwargs:  # the upstream file's name for transformers 5's ``dtype``
            kwargs.setdefault("dtype", kwargs.pop("torch_dtype"))
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.template_version = template_version
        self.use_cache = use_cache
        self.vision_config = {**COGVLM_CHAT["vision_config"], **dict(vision_config or {})}
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of {num_attention_heads} heads")
        vc = self.vision_config
        if vc["hidden_size"] % vc["num_heads"]:
            raise ValueError(f"vision hidden_size {vc['hidden_size']} is not a multiple of num_heads {vc['num_heads']}")
        if (vc["image_size"] // vc["patch_size"]) ** 2 + 1 != vc["num_positions"]:
            raise ValueError(f"vision num_positions {vc['num_positions']} != (image_size // patch_size)^2 + 1")
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    @property
    def vision_tokens(self) -> int:
        """LLM positions one image fills: boi + (image_size // patch_size)^2 patches + eoi (1227 for cogvlm-chat)."""
        vc = self.vision_config
        return (vc["image_size"] // vc["patch_size"]) ** 2 + 2
