"""LLaVA-NeXT configs: transformers' ``LlavaNextConfig``, also reading the ORIGINAL LLaVA-NeXT config.json layout.

The llava-hf checkpoints (llava-v1.6-mistral-7b-hf, llava-v1.6-34b-hf) already use ``LlavaNextConfig`` fields
(``text_config`` / ``vision_config`` / ``image_token_index`` ...). The lmms-lab checkpoints (llama3-llava-next-8b,
llava-next-72b/110b) keep the original LLaVA-NeXT layout: the LLM fields flat at the top level plus ``mm_*`` fields
(``model_type`` ``llava_llama`` / ``llava_qwen``). ``LlavaNextConfig`` here accepts both and converts the original
one on construction, so ``LlavaNextConfig.from_pretrained(lmms_lab_dir)`` works without remote code::

    >>> cfg = LlavaNextConfig(**LLAMA3_LLAVA_NEXT_8B)
    >>> cfg.text_config.model_type, cfg.vision_config.hidden_size, cfg.vision_feature_layer, cfg.image_token_id
    ('llama', 1024, -2, 128256)

Sources (short names used in the comments, [read] = seen in the source, [inferred] = derived or from a copy):
  HF-M  = llava-hf/llava-v1.6-mistral-7b-hf config.json, quoted by copies that keep ``_name_or_path`` (e.g.
          panoyo9829/llava-v1.6-mistral-7b-bnb-4bit-hf, Ayush374/quantised_llava) + /work/notes/llava_facts.md 5a
  HF-34 = llava-hf/llava-v1.6-34b-hf config.json (HF blame @4d3cd9f via llava_facts 2b; PerRing/llava-v1.6-34b-hf)
  MIS   = mistral-community/Mistral-7B-v0.2 config.json (same shapes as Mistral-7B-Instruct-v0.2)
  NH34  = Nous-Hermes-2-Yi-34B config.json (copies: gbstox/agronomYi-hermes-34B, dfurman/HermesBagel-34B-v0.1)
  L3    = lmms-lab/llama3-llava-next-8b config.json (HF blob 63a30f6) and lmms-lab/llama3-llava-next-8b-tokenizer
  Q72   = Qwen/Qwen1.5-72B-Chat config.json (HF blob 3eebb4d)
  Q110  = Qwen1.5-110B-Chat config.json (copy: second-state/Qwen1.5-110B-Chat-GGUF config.json)
  CLIP  = openai/clip-vit-large-patch14-336 (vision_config in every llava-hf config above)
  NX    = LLaVA-VL/LLaVA-NeXT llava/model/llava_arch.py + multimodal_encoder/clip_encoder.py (module tree)
"""

from __future__ import annotations

from typing import Any

from transformers import LlavaNextConfig as _HFLlavaNextConfig

from .image_tokens import LLAVA_NEXT_GRID_PINPOINTS

PINPOINTS = [list(p) for p in LLAVA_NEXT_GRID_PINPOINTS]  # [read] HF-M, HF-34, L3 (same five (h, w) pairs)

# CLIP ViT-L/14 at 336 px, the vision tower of all five checkpoints [read] CLIP via HF-M / HF-34; L3 names it in
# ``mm_vision_tower``. ``hidden_act`` quick_gelu and ``layer_norm_eps`` 1e-5 are CLIPVisionConfig defaults [inferred].
CLIP_L_336 = {
    "model_type": "clip_vision_model",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
VISION_TOWERS = {"openai/clip-vit-large-patch14-336": CLIP_L_336}

# ---- llava-hf layout -----------------------------------------------------------------------------------------------

LLAVA_V16_MISTRAL_7B: dict[str, Any] = {
    "architectures": ["LlavaNextForConditionalGeneration"],
    "image_token_index": 32000,  # [read] HF-M; tokenizer added_tokens.json {"<image>": 32000, "<pad>": 32001}
    "image_grid_pinpoints": PINPOINTS,
    "projector_hidden_act": "gelu",  # [read] HF-M
    "vision_feature_layer": -2,  # [read] HF-M
    "vision_feature_select_strategy": "default",  # [read] HF-M (CLS dropped)
    "tie_word_embeddings": False,
    "text_config": {
        "_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2",  # [read] HF-M
        "model_type": "mistral",
        "hidden_size": 4096,  # [read] MIS
        "intermediate_size": 14336,  # [read] HF-M text_config, MIS
        "num_hidden_layers": 32,  # [read] MIS
        "num_attention_heads": 32,  # [read] MIS
        "num_key_value_heads": 8,  # [read] MIS
        "max_position_embeddings": 32768,  # [read] MIS
        "rms_norm_eps": 1e-5,  # [read] MIS
        "rope_theta": 1000000.0,  # [read] MIS (v0.2)
        "sliding_window": None,  # [read] HF-M (llava_facts 5a)
        "vocab_size": 32064,  # [read] HF-M: 32000 + <image>, <pad> padded to a multiple of 64
        "tie_word_embeddings": False,
    },
    "vision_config": dict(CLIP_L_336),
}

LLAVA_V16_34B: dict[str, Any] = {
    "architectures": ["LlavaNextForConditionalGeneration"],
    "image_token_index": 64000,  # [read] HF-34 (vlmref's <image> id; ms-swift hard-codes 64003, transformers#31901)
    "image_grid_pinpoints": PINPOINTS,
    "projector_hidden_act": "gelu",
    "vision_feature_layer": -2,  # [read] HF-34
    "vision_feature_select_strategy": "default",  # [read] HF-34
    "tie_word_embeddings": False,
    "text_config": {
        "_name_or_path": "NousResearch/Nous-Hermes-2-Yi-34B",  # [read] HF-34
        "model_type": "llama",
        "hidden_size": 7168,  # [read] HF-34 text_config, NH34
        "intermediate_size": 20480,  # [read] HF-34, NH34
        "num_hidden_layers": 60,  # [read] HF-34, NH34
        "num_attention_heads": 56,  # [read] HF-34, NH34
        "num_key_value_heads": 8,  # [read] HF-34, NH34
        "max_position_embeddings": 4096,  # [read] HF-34
        "rms_norm_eps": 1e-5,  # [read] HF-34
        "rope_theta": 5000000.0,  # [read] HF-34, NH34
        "vocab_size": 64064,  # [read] HF-34: 64000 + 3 added tokens padded to a multiple of 64
        "eos_token_id": 7,  # [read] HF-34 (<|im_end|>)
        "pad_token_id": 0,  # [read] HF-34
        "tie_word_embeddings": False,
    },
    "vision_config": dict(CLIP_L_336),
}

# ---- original LLaVA-NeXT layout (lmms-lab) -------------------------------------------------------------------------

_ORIGINAL_MM = {
    "image_aspect_ratio": "anyres",  # [read] L3
    "image_grid_pinpoints": PINPOINTS,  # [read] L3
    "mm_hidden_size": 1024,  # [read] L3
    "mm_patch_merge_type": "spatial_unpad",  # [read] L3 (-> learned image_newline, NX)
    "mm_projector_type": "mlp2x_gelu",  # [read] L3 (Linear, GELU, Linear: keys mm_projector.0 / .2, NX)
    "mm_vision_select_feature": "patch",  # [read] L3 (CLS dropped)
    "mm_vision_select_layer": -2,  # [read] L3
    "mm_vision_tower": "openai/clip-vit-large-patch14-336",  # [read] L3
    "mm_tunable_parts": "mm_vision_tower,mm_mlp_adapter,mm_language_model",  # [read] L3: the tower is in the ckpt
    "tie_word_embeddings": False,
}

LLAMA3_LLAVA_NEXT_8B: dict[str, Any] = {
    "architectures": ["LlavaLlamaForCausalLM"],  # [read] L3
    "model_type": "llava_llama",  # [read] L3 blob 63a30f6 (the -tokenizer copy says "llava")
    "hidden_size": 4096,  # [read] L3
    "intermediate_size": 14336,  # [read] L3
    "num_hidden_layers": 32,  # [read] L3
    "num_attention_heads": 32,  # [read] L3
    "num_key_value_heads": 8,  # [read] L3
    "max_position_embeddings": 8192,  # [read] L3
    "rms_norm_eps": 1e-5,  # [read] L3 (-tokenizer copy)
    "rope_theta": 500000.0,  # [read] L3 (-tokenizer copy)
    "hidden_act": "silu",  # [read] L3
    "attention_bias": False,  # [read] L3
    "bos_token_id": 128000,  # [read] L3
    "eos_token_id": 128001,  # [read] L3
    # [inferred] Meta-Llama-3-8B-Instruct vocab; the shard sizes (16.72 GB bf16 = 8.36e9 params) agree. ms-swift
    # resizes the embeddings to len(tokenizer) on load (no change: its tokenizer adds no token, it uses -200)
    "vocab_size": 128256,
    "image_token_index": 128256,  # [read] L3 -tokenizer copy; vlmref's added <image> id (outside the vocab)
    **_ORIGINAL_MM,
}

_QWEN15 = {
    "model_type": "llava_qwen",  # [read] NX llava_qwen.py (LlavaQwenConfig.model_type)
    "architectures": ["LlavaQwenForCausalLM"],
    "hidden_size": 8192,  # [read] Q72, Q110
    "num_hidden_layers": 80,  # [read] Q72, Q110
    "num_attention_heads": 64,  # [read] Q72, Q110
    "max_position_embeddings": 32768,  # [read] Q72, Q110
    "rms_norm_eps": 1e-6,  # [read] Q72, Q110
    "rope_theta": 1000000.0,  # [read] Q72, Q110
    "hidden_act": "silu",
    "use_sliding_window": False,  # [read] Q72, Q110
    "bos_token_id": 151643,  # [read] Q110
    "eos_token_id": 151645,  # [read] Q110
    # [read] Q72/Q110 (padded Qwen vocab); the lmms-lab checkpoints keep it [inferred]. ms-swift 2.2.0 calls
    # resize_token_embeddings(len(tokenizer)) = 151646 rows on load (its tokenizer has no <image>; it uses -200)
    "vocab_size": 152064,
    "image_token_index": 151646,  # vlmref's added <image> id = len(Qwen1.5 tokenizer) (golden specials)
    **_ORIGINAL_MM,
}

LLAVA_NEXT_72B: dict[str, Any] = {
    **_QWEN15,
    "intermediate_size": 24576,  # [read] Q72
    "num_key_value_heads": 64,  # [read] Q72 (no GQA); 72.288e9 LLM params (leaderboard) agree
}

LLAVA_NEXT_110B: dict[str, Any] = {
    **_QWEN15,
    "intermediate_size": 49152,  # [read] Q110
    # [read] Q110: GQA with 8 kv heads. The published LLM size 111.21e9 (Open LLM Leaderboard request for
    # Qwen/Qwen1.5-110B-Chat) matches 8 (exactly 111,209,914,368); 64 kv heads would give 120.2e9
    "num_key_value_heads": 8,
}

# ---- tiny models: real vocab, real 336-px / 14-px geometry (576 tokens per tile), small widths --------------------

_TINY_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2}
_TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "projection_dim": 32}
TINY_HF: dict[str, Any] = {"text_config": dict(_TINY_TEXT), "vision_config": dict(_TINY_VISION)}
# the original layout has no vision_config field: ``vision_config`` here is a vlmref extension merged over the tower
# named by mm_vision_tower
TINY_ORIGINAL: dict[str, Any] = {**_TINY_TEXT, "mm_hidden_size": 32, "vision_config": dict(_TINY_VISION)}

# ---- the config class -----------------------------------------------------------------------------------------------

_TEXT_MODEL_TYPES = {"llava_llama": "llama", "llava": "llama", "llava_qwen": "qwen2", "llava_mistral": "mistral"}
_TEXT_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "initializer_range", "rms_norm_eps", "rope_theta",
    "rope_scaling", "attention_bias", "attention_dropout", "bos_token_id", "eos_token_id", "pad_token_id",
    "sliding_window", "use_sliding_window", "max_window_layers", "pretraining_tp", "use_cache", "head_dim",
)
# the <image> id vlmref's templates add when the original config has none (lmms-lab used the -200 sentinel)
DEFAULT_IMAGE_TOKEN = {"llama": 128256, "qwen2": 151646, "mistral": 32000}


def is_original_layout(config: dict[str, Any]) -> bool:
    """True for an original LLaVA-NeXT config.json (flat LLM fields + ``mm_*``), False for the llava-hf layout."""
    return "text_config" not in config and ("mm_projector_type" in config or "mm_vision_tower" in config)


def original_to_hf(config: dict[str, Any]) -> dict[str, Any]:
    """Convert an original LLaVA-NeXT config dict into ``LlavaNextConfig`` fields (unknown training fields dropped)."""
    src = dict(config)
    model_type = src.pop("model_type", "llava_llama")
    if model_type not in _TEXT_MODEL_TYPES:
        raise ValueError(f"unsupported original LLaVA-NeXT model_type {model_type!r}; known: {sorted(_TEXT_MODEL_TYPES)}")
    checks = {"mm_projector_type": "mlp2x_gelu", "mm_patch_merge_type": "spatial_unpad", "image_aspect_ratio": "anyres"}
    for key, want in checks.items():
        if src.get(key, want) != want:
            raise NotImplementedError(f"LLaVA-NeXT {key}={src[key]!r} is not supported (only {want!r})")
    text = {k: src.pop(k) for k in _TEXT_FIELDS if k in src}
    text["model_type"] = _TEXT_MODEL_TYPES[model_type]
    text["tie_word_embeddings"] = bool(src.pop("tie_word_embeddings", False))
    tower = src.pop("mm_vision_tower", "openai/clip-vit-large-patch14-336")
    base = next((v for k, v in VISION_TOWERS.items() if str(tower).rstrip("/").endswith(k.split("/")[-1])), CLIP_L_336)
    vision = {**base, **(src.pop("vision_config", None) or {})}
    mm_hidden = src.pop("mm_hidden_size", vision["hidden_size"])
    if mm_hidden != vision["hidden_size"]:
        raise ValueError(f"mm_hidden_size {mm_hidden} != vision tower width {vision['hidden_size']}")
    feature = src.pop("mm_vision_select_feature", "patch")
    out = {
        "text_config": text,
        "vision_config": vision,
        "image_token_index": src.pop("image_token_index", DEFAULT_IMAGE_TOKEN[text["model_type"]]),
        "image_grid_pinpoints": src.pop("image_grid_pinpoints", PINPOINTS),
        "vision_feature_layer": src.pop("mm_vision_select_layer", -2),
        "vision_feature_select_strategy": {"patch": "default", "cls_patch": "full"}[feature],
        "projector_hidden_act": "gelu",
        "tie_word_embeddings": text["tie_word_embeddings"],
    }
    for key in ("architectures", "torch_dtype", "dtype", "_name_or_path", "transformers_version"):
        if key in src:
            out[key] = src.pop(key)
    return out  # everything else (mm_* training flags, tokenizer_* ...) is dropped


class LlavaNextConfig(_HFLlavaNextConfig):
    """transformers' ``LlavaNextConfig`` that also takes the original LLaVA-NeXT (lmms-lab) config.json fields.

    >>> LlavaNextConfig(**LLAVA_NEXT_110B).text_config.num_key_value_heads
    8
    """

    def __post_init__(self, **kwargs):
        if self.text_config is None and is_original_layout(kwargs):
            original = dict(kwargs)
            if self.image_token_index != _HFLlavaNextConfig.image_token_index:  # passed explicitly
                original["image_token_index"] = self.image_token_index
            if self.image_grid_pinpoints is not None:
                original["image_grid_pinpoints"] = self.image_grid_pinpoints
            if self.vision_config is not None:
                original["vision_config"] = self.vision_config
            converted = original_to_hf(original)
            for key in ("text_config", "vision_config", "image_token_index", "image_grid_pinpoints",
                        "vision_feature_layer", "vision_feature_select_strategy", "projector_hidden_act",
                        "tie_word_embeddings"):
                setattr(self, key, converted.pop(key))
            kwargs = converted
        super().__post_init__(**kwargs)

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        config_dict, rest = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if is_original_layout(config_dict):
            config_dict = {**original_to_hf(config_dict), "model_type": cls.model_type}
        return config_dict, rest
