"""Yi-VL config: the LLaVA-1.5-style ``config.json`` of 01-ai/Yi-VL-6B/34B (Llama fields + ``mm_*``), plus the
CLIP ViT-H/14-448 tower config that upstream keeps in ``vit/<name>/config.json``::

    >>> cfg = YiVLConfig(**YI_VL_6B)
    >>> cfg.num_key_value_heads, cfg.vision_config.image_size, cfg.mm_projector_type
    (4, 448, 'mlp2x_gelu_Norm')

``YiVLConfig.from_pretrained(real_dir)`` reads the upstream config.json and, when the ``mm_vision_tower`` folder exists
under the model folder, that folder's ``config.json`` as ``vision_config``.

Sources ([read] = seen in the source, [inferred] = derived or from a copy):
  Y6   = 01-ai/Yi-VL-6B config.json (HF blame main, blob 65a35ce)
  Y34  = Yi-VL-34B config.json as copied in BabyChou/Yi-VL-34B (blob f74f101; LLM + mm_* fields as upstream)
  YI34 = 01-ai/Yi-34B(-Chat) config.json copies (Locutusque/Hyperion-3.0-Yi-34B, FreedomIntelligence/Apollo-34B)
  VIT  = vit/clip-vit-H-14-laion2B-s32B-b79K-yi-vl-6B-448/config.json as converted into the vision_config of
         BUAADreamer/Yi-VL-6B-hf (blob c1fe742, ``_name_or_path`` = that vit folder)
  YIVL = 01-ai/Yi ``VL/llava/model`` (llava_llama.py, llava_arch.py, clip_encoder/clip_encoder.py,
         multimodal_projector/builder.py): the module tree and the feature selection
"""

from __future__ import annotations

import json
import os
from typing import Any

from transformers import CLIPVisionConfig, LlamaConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

IMAGE_TOKEN_INDEX = -200  # LLaVA's IMAGE_TOKEN_INDEX: Yi-VL's prompt ids carry -200 where an image goes [read] YIVL

# CLIP ViT-H/14 (OpenCLIP laion2B-s32B-b79K, fine-tuned by 01.AI) at 448 px [read] VIT: 32 x 32 patches = 1024
# features per image after dropping CLS. ``layer_norm_eps`` 1e-5 is the CLIPVisionConfig default [inferred].
CLIP_H_448: dict[str, Any] = {
    "model_type": "clip_vision_model",
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "image_size": 448,
    "patch_size": 14,
    "projection_dim": 1024,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}

_COMMON: dict[str, Any] = {
    "architectures": ["LlavaLlamaForCausalLM"],  # [read] Y6
    "hidden_act": "silu",  # [read] Y6
    "attention_bias": False,  # [read] Y6
    "bos_token_id": 1,  # [read] Y6
    "eos_token_id": 2,  # [read] Y6
    "max_position_embeddings": 4096,  # [read] Y6, Y34
    "rms_norm_eps": 1e-5,  # [read] Y6, Y34
    "rope_theta": 5000000.0,  # [read] Y6, Y34
    "rope_scaling": None,  # [read] Y6
    "tie_word_embeddings": False,  # [read] Y6, Y34
    "vocab_size": 64000,  # [read] Y6; YI34 (Y34 copy truncated before it)
    "image_aspect_ratio": "pad",  # [read] Y6 (expand2square on the CLIP mean colour)
    "mm_hidden_size": 1280,  # [read] Y6, Y34
    "mm_projector_type": "mlp2x_gelu_Norm",  # [read] Y6: Linear, LayerNorm, GELU, Linear, LayerNorm (YIVL builder.py)
    "mm_vision_select_feature": "patch",  # [read] Y6: CLS dropped
    "mm_vision_select_layer": -2,  # [read] Y6
    "mm_use_im_start_end": False,  # [read] Y6
    "mm_use_im_patch_token": False,  # [read] Y6
    "image_token_index": IMAGE_TOKEN_INDEX,
    "vision_config": dict(CLIP_H_448),
}

YI_VL_6B: dict[str, Any] = {
    **_COMMON,
    "hidden_size": 4096,  # [read] Y6
    "intermediate_size": 11008,  # [read] Y6
    "num_hidden_layers": 32,  # [read] Y6
    "num_attention_heads": 32,  # [read] Y6
    "num_key_value_heads": 4,  # [read] Y6 (GQA)
    "mm_vision_tower": "./vit/clip-vit-H-14-laion2B-s32B-b79K-yi-vl-6B-448",  # [read] Y6
}

YI_VL_34B: dict[str, Any] = {
    **_COMMON,
    "hidden_size": 7168,  # [read] Y34, YI34
    "intermediate_size": 20480,  # [read] Y34, YI34
    "num_hidden_layers": 60,  # [read] Y34, YI34
    "num_attention_heads": 56,  # [read] Y34, YI34
    "num_key_value_heads": 8,  # [read] Y34, YI34
    "mm_vision_tower": "./vit/clip-vit-H-14-laion2B-s32B-b79K-yi-vl-34B-448",  # [read] Y34
}

# tiny: real vocab, real 448/14 geometry (1024 image positions), small widths
TINY: dict[str, Any] = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "mm_hidden_size": 32,
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "projection_dim": 32},
}


class YiVLConfig(LlamaConfig):
    """``LlamaConfig`` (the Yi LLM) + the LLaVA-1.5 ``mm_*`` fields + ``vision_config`` (CLIPVisionConfig).

    >>> YiVLConfig(**YI_VL_34B).vision_config.hidden_size
    1280
    """

    model_type = "yi_vl"  # upstream says "llava", which transformers maps to its own LlavaConfig
    sub_configs_defaults = {"vision_config": SubConfigSpec(config_class=CLIPVisionConfig, init_kwargs=CLIP_H_448)}

    vision_config: dict | PreTrainedConfig | None = None
    mm_hidden_size: int = 1280
    mm_projector_type: str = "mlp2x_gelu_Norm"
    mm_vision_select_layer: int = -2
    mm_vision_select_feature: str = "patch"
    mm_vision_tower: str | None = None
    image_aspect_ratio: str = "pad"
    image_token_index: int = IMAGE_TOKEN_INDEX

    def __post_init__(self, **kwargs):
        if self.mm_projector_type != "mlp2x_gelu_Norm":
            raise NotImplementedError(f"Yi-VL mm_projector_type {self.mm_projector_type!r} (only mlp2x_gelu_Norm)")
        if self.mm_vision_select_feature not in ("patch", "cls_patch"):
            raise ValueError(f"mm_vision_select_feature {self.mm_vision_select_feature!r}: 'patch' or 'cls_patch'")
        super().__post_init__(**kwargs)

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        config_dict, rest = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if config_dict.get("model_type") in ("llava", None):
            config_dict = {**config_dict, "model_type": cls.model_type}
        if "vision_config" not in config_dict:
            tower = vision_tower_dir(pretrained_model_name_or_path, config_dict.get("mm_vision_tower"))
            if tower is not None and os.path.isfile(os.path.join(tower, "config.json")):
                with open(os.path.join(tower, "config.json"), encoding="utf-8") as f:
                    vit = json.load(f)
                config_dict = {**config_dict, "vision_config": vit.get("vision_config", vit)}
        return config_dict, rest


def vision_tower_dir(model_dir: str | os.PathLike | None, mm_vision_tower: str | None) -> str | None:
    """The local ``vit/<name>`` folder Yi-VL keeps the ViT in (``mm_vision_tower`` relative to the model folder,
    as ms-swift and Yi's ``key_info['model_path']`` resolve it), or None."""
    if model_dir is None or not mm_vision_tower or not os.path.isdir(str(model_dir)):
        return None
    parts = str(mm_vision_tower).replace("\\", "/").rstrip("/").split("/")
    folder = os.path.join(str(model_dir), *parts[-2:])
    return folder if os.path.isdir(folder) else None
