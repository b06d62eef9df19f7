"""InternLM-XComposer2-7B / IXC-2.5-7B configuration: upstream ``config.json`` field names, full values, tiny overrides.

``InternLMXComposer2Config.from_pretrained(dir)`` reads a real ``internlm/internlm-xcomposer2-7b`` or
``internlm/internlm-xcomposer2d5-7b`` ``config.json`` (LLM fields, ``rope_scaling``, ``max_length``, and ``img_size``
for XComposer2). The vision tower, projector and PLoRA sizes are hard-coded in the upstream ``build_mlp.py`` /
``modeling_internlm2.py``; here they are fields with those values as defaults (``vision_config``, ``plora_*``,
``task_lora_ranks``), derived from ``image_layout``: ``"fixed"`` (XComposer2: one ``img_size`` view) when the
config has ``img_size``, else ``"hd"`` (IXC-2.5: 560-px tiles + a global view, 2x2 token merge, separators).

>>> cfg = InternLMXComposer2Config(**{**IXC2_7B, **TINY})
>>> cfg.image_layout, cfg.vision_config["image_size"], cfg.image_tokens
('fixed', 224, 256)
>>> InternLMXComposer2Config(**IXC2_5_7B).task_lora_ranks
{'web': 512, 'sft': 256, 'dpo': 256}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import PretrainedConfig

IMAGE_TOKEN_INDEX = -200  # input_ids value at image positions (vlmref templates; never an embedding row)

_IXC2 = "internlm/internlm-xcomposer2-7b config.json (HF main, blame 194829f) [read]"
_IXC25 = "internlm/internlm-xcomposer2d5-7b config.json (HF raw refs/pr/1; same values in -7b-4bit) [read]"
_PLORA = ("modeling_internlm2.py PLoRA(..., lora_r=256, lora_alpha=256) on wqkv/wo/w1/w2/w3 and build_mlp.py "
          "PLoRA(lora_dropout=0.05) (IXC2: PaddleMIX port; IXC-2.5: InternLM-XComposer OmniLive base copy) [read]")
# CLIP ViT-L/14 (openai/clip-vit-large-patch14(-336) architecture; same numbers in internlm/internlm2-wqx-vl-clip
# config.json, the 560-px CLIP of the same team) [read]
CLIP_L14: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 336,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}

IXC2_7B: dict[str, Any] = {
    "vocab_size": 92544,  # _IXC2
    "hidden_size": 4096,  # _IXC2
    "intermediate_size": 14336,  # _IXC2
    "num_hidden_layers": 32,  # _IXC2
    "num_attention_heads": 32,  # _IXC2
    "num_key_value_heads": 8,  # _IXC2 (GQA, head_dim 128; wqkv out (32 + 2*8) * 128 = 6144)
    "hidden_act": "silu",  # _IXC2
    "max_position_embeddings": 32768,  # _IXC2
    "initializer_range": 0.02,  # _IXC2
    "rms_norm_eps": 1e-05,  # _IXC2
    "use_cache": False,  # _IXC2
    "pad_token_id": 2,  # _IXC2
    "bos_token_id": 1,  # _IXC2
    "eos_token_id": 2,  # _IXC2
    "tie_word_embeddings": False,  # _IXC2
    "bias": False,  # _IXC2
    "rope_theta": 1000000,  # _IXC2
    "rope_scaling": {"factor": 1.0, "type": "dynamic"},  # _IXC2
    "max_length": 4096,  # _IXC2
    "img_size": 224,  # _IXC2 (build_mlp.py resize_pos interpolates CLIP-336's 24x24 grid to 16x16 + CLS = 257)
    "image_layout": "fixed",  # build_mlp.py CLIPVisionTower(images): select_layer -1, 'patch' -> 256 tokens [read]
    "vision_config": {**CLIP_L14, "image_size": 224},  # build_mlp.py 'openai/clip-vit-large-patch14-336' [read]
    "plora_r": 256,  # _PLORA
    "plora_alpha": 256,  # _PLORA (scaling alpha / r = 1.0)
    "plora_dropout": 0.05,  # _PLORA
    "task_lora_ranks": {},  # XComposer2 has no task adapters
}

IXC2_5_7B: dict[str, Any] = {
    **{k: IXC2_7B[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                              "num_attention_heads", "num_key_value_heads", "hidden_act", "initializer_range",
                              "rms_norm_eps", "use_cache", "pad_token_id", "bos_token_id", "eos_token_id",
                              "tie_word_embeddings", "bias", "rope_theta")},  # same values in _IXC25
    "max_position_embeddings": 24576,  # _IXC25
    "rope_scaling": {"type": "dynamic", "factor": 2.0},  # _IXC25
    "max_length": 16384,  # _IXC25
    "image_layout": "hd",  # build_mlp.py CLIPVisionTower(images, glb_GN, sub_GN) [read]
    # build_mlp.py 'internlm/internlm-xcomposer2d5-clip' at 560 px: `assert N == 40 ** 2` and no pos-emb
    # interpolation (resize_pos is a no-op) -> the CLIP's own image_size is 560 [read]; its config.json itself not
    # read, the other values [inferred] = internlm2-wqx-vl-clip (clip_l_560)
    "vision_config": {**CLIP_L14, "image_size": 560},
    "plora_r": 256,  # _PLORA (OmniLive base copy of IXC-2.5 modeling_internlm2.py; wqkv r=256 too)
    "plora_alpha": 256,  # _PLORA
    "plora_dropout": 0.05,  # _PLORA
    # Extra task LoRAs in every PLoRA module: names lora_web_*, lora_sft_*, lora_dpo_* [read: lmdeploy
    # lmdeploy/vl/tools/merge_xcomposer2d5_task.py @1ceceb506 (web=['lora_web'], write=['lora_sft','lora_dpo'])];
    # ranks [inferred]: IXC-2.5 paper (webpage LoRA rank 512, article SFT/DPO rank 256), consistent with the
    # checkpoint size (model-0000{1,2,3}-of-00003.safetensors 9.97 + 10 + 2.22 GB bf16 = 11.1e9 parameters).
    "task_lora_ranks": {"web": 512, "sft": 256, "dpo": 256},
}

# Tiny: real vocabulary, real image geometry (224 px -> 256 positions; 560-px tiles -> 400 per tile, the same counts
# as the templates), small widths/depths; GQA kept (4 heads over 2 kv heads).
TINY: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
    "plora_r": 8,
    "plora_alpha": 8,
}
TINY_2_5: dict[str, Any] = {**TINY, "task_lora_ranks": {"web": 16, "sft": 8, "dpo": 8}}


def default_vision_config(image_layout: str, img_size: int | None) -> dict[str, Any]:
    """The documented fallback when neither config.json's ``vision_config`` nor a CLIP folder gives the tower."""
    size = 560 if image_layout == "hd" else (img_size or 336)
    return {**CLIP_L14, "image_size": size}


# IXC-2.5 keeps its CLIP in a folder of its own: build_mlp.py loads 'internlm/internlm-xcomposer2d5-clip', the
# OmniLive base copy 'internlm-xcomposer2d5-ol-7b/base/IXC2d5_clip_l_560' [read]. Looked for in the model folder
# when config.json names none (``vision_tower``).
HD_TOWER_FOLDERS = ("internlm-xcomposer2d5-clip", "IXC2d5_clip_l_560")
_CLIP_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "patch_size",
                "image_size", "hidden_act", "layer_norm_eps", "num_channels")


def vision_tower_folder(model_dir: Any, config_dict: dict[str, Any], required: bool = True) -> Path | None:
    """The CLIP folder of a model folder: config.json's ``vision_tower`` (absolute, relative to the model folder,
    or a hub id whose last part is a subfolder), else IXC-2.5's upstream folder names; None if there is none.
    A named folder that does not exist is an error when ``required`` (the config needs it for the tower's shape)."""
    if model_dir is None or not os.path.isdir(str(model_dir)):
        return None
    named = config_dict.get("vision_tower")
    hd = config_dict.get("image_layout", "fixed" if config_dict.get("img_size") is not None else "hd") == "hd"
    candidates = [named] if named else (list(HD_TOWER_FOLDERS) if hd else [])
    for name in candidates:
        path = Path(str(name))
        for folder in (path, Path(model_dir) / path, Path(model_dir) / path.name):
            if (path.is_absolute() or folder != path) and (folder / "config.json").is_file():
                return folder
    if named and required:
        raise FileNotFoundError(f"{Path(model_dir) / 'config.json'}: vision_tower {named!r} is not a folder with a "
                                f"config.json (absolute, or relative to {model_dir})")
    return None


def read_tower_config(folder: Path) -> dict[str, Any]:
    """The CLIP vision fields of ``folder/config.json`` (a CLIPVisionConfig, or a CLIPConfig's ``vision_config``)."""
    file = folder / "config.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{file}: not a readable JSON config ({e})") from e
    vision = data.get("vision_config", data)
    if not isinstance(vision, dict) or "hidden_size" not in vision:
        raise ValueError(f"{file}: expected a CLIP vision config (hidden_size, num_hidden_layers, ...)")
    return {k: vision[k] for k in _CLIP_FIELDS if k in vision}


class InternLMXComposer2Config(PretrainedConfig):
    """Upstream field names; defaults = the upstream ``InternLMXcomposer2Config`` class defaults for LLM fields."""

    model_type = "internlmxcomposer2"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    vocab_size: int = 103168
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    tie_word_embeddings: bool = False
    bias: bool = True
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    max_length: int | None = None
    img_size: int | None = None
    # vlmref fields (upstream hard-codes these in build_mlp.py / modeling_internlm2.py)
    image_layout: str | None = None
    vision_config: dict | None = None
    vision_tower: str | None = None  # the CLIP folder (upstream layout); see vision_tower_folder
    plora_r: int = 256
    plora_alpha: int = 256
    plora_dropout: float = 0.05
    task_lora_ranks: dict | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.image_layout is None:
            self.image_layout = "fixed" if self.img_size is not None else "hd"
        if self.image_layout not in ("fixed", "hd"):
            raise ValueError(f"image_layout must be 'fixed' or 'hd', got {self.image_layout!r}")
        vision = {**default_vision_config(self.image_layout, self.img_size), **(self.vision_config or {})}
        if self.image_layout == "fixed" and self.img_size is not None:
            vision["image_size"] = self.img_size
        self.vision_config = vision
        if self.task_lora_ranks is None:
            self.task_lora_ranks = {"web": 512, "sft": 256, "dpo": 256} if self.image_layout == "hd" else {}
        if self.rope_scaling is not None and self.rope_scaling.get("type") not in ("linear", "dynamic"):
            raise ValueError(f"rope_scaling type must be 'linear' or 'dynamic', got {self.rope_scaling}")
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("hidden_size must divide by num_attention_heads, and heads by num_key_value_heads")
        super().__post_init__(**kwargs)

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        """config.json, with ``vision_config`` read from the CLIP folder when config.json has none."""
        config_dict, rest = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if "vision_config" not in config_dict:
            folder = vision_tower_folder(pretrained_model_name_or_path, config_dict)
            if folder is not None:
                config_dict = {**config_dict, "vision_config": read_tower_config(folder)}
        return config_dict, rest

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def patch_grid(self) -> int:
        """Patches per side of one vision-tower view (16 for XComposer2 at 224 px, 40 for a 560-px tile)."""
        return self.vision_config["image_size"] // self.vision_config["patch_size"]

    @property
    def image_tokens(self) -> int | None:
        """LLM positions per image for the fixed layout (256); None for HD (depends on the tiling)."""
        return self.patch_grid**2 if self.image_layout == "fixed" else None

    @property
    def projector_in(self) -> int:
        """vision_proj input width: the CLIP width, or 4x it after IXC-2.5's 2x2 token merge."""
        return self.vision_config["hidden_size"] * (4 if self.image_layout == "hd" else 1)
