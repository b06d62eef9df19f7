"""Toy config: Llama fields (the decoder) + the image geometry of the patchify "vision" part::

    >>> cfg = ToyConfig(**{**TOY_VLM, **TINY})
    >>> cfg.vocab_size, cfg.hidden_size, cfg.image_size // cfg.patch_size
    (32000, 32, 2)
"""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig

from .media import TOY_IMAGE_SIZE, TOY_PATCH_SIZE

IMAGE_TOKEN_INDEX = -200  # the id the template fills image positions with (vlmref IMAGE_SENTINEL)

TOY_VLM: dict[str, Any] = {
    "architectures": ["ToyForCausalLM"],
    "vocab_size": 32000,  # the llama2 tokenizer's
    "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 4, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_word_embeddings": False,
    "image_size": TOY_IMAGE_SIZE, "patch_size": TOY_PATCH_SIZE, "vision_hidden_size": 64,
    "image_token_index": IMAGE_TOKEN_INDEX,
}

TINY: dict[str, Any] = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "vision_hidden_size": 16}


class ToyConfig(LlamaConfig):
    """``LlamaConfig`` + ``image_size``, ``patch_size``, ``vision_hidden_size``, ``image_token_index``."""

    model_type = "toy_vlm"

    image_size: int = TOY_IMAGE_SIZE
    patch_size: int = TOY_PATCH_SIZE
    vision_hidden_size: int = 64
    image_token_index: int = IMAGE_TOKEN_INDEX
