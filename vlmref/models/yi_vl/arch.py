"""Yi-VL-6B / Yi-VL-34B: Yi LLM (Llama layout) + CLIP ViT-H/14-448 + mlp2x_gelu_Norm projector (LLaVA-1.5 layout).

Parameter groups (state-dict prefixes, upstream names)::

    >>> from vlmref.models.arch import get_arch
    >>> get_arch("yi-vl-6b-chat").components["language_model"]
    ('model.embed_tokens', 'model.layers', 'model.norm')
"""

from __future__ import annotations

from ..arch import ArchSpec, register_arch
from .config import TINY, YI_VL_6B, YI_VL_34B, YiVLConfig
from .export import export_vision_tower
from .modeling import YiVLForCausalLM, load_vision_tower

COMPONENTS = {
    "vision_tower": ("model.vision_tower",),
    "projector": ("model.mm_projector",),
    "language_model": ("model.embed_tokens", "model.layers", "model.norm"),
    "lm_head": ("lm_head",),
}

_SOURCE = ("config: 01-ai/{name} config.json + vit/clip-vit-H-14-laion2B-s32B-b79K-yi-vl-{size}-448/config.json "
           "(see vlmref/models/yi_vl/config.py); modules: 01-ai/Yi VL/llava/model (llava_llama.py, llava_arch.py, "
           "clip_encoder.py, multimodal_projector/builder.py) on transformers LlamaModel + CLIP blocks")
_NOTE_LORA = ("LoRA DEFAULT q_proj/k_proj/v_proj matches by peft suffix the LLM attention AND the ViT's "
              "self_attn.q_proj/k_proj/v_proj (32 layers x 3); Yi's CLIPVisionTower.forward has no torch.no_grad")

for _model_type, _config, _name, _size in (
    ("yi-vl-6b-chat", YI_VL_6B, "Yi-VL-6B", "6B"),
    ("yi-vl-34b-chat", YI_VL_34B, "Yi-VL-34B", "34B"),
):
    register_arch(ArchSpec(
        model_type=_model_type,
        family="yi_vl",
        config_class=YiVLConfig,
        model_class=YiVLForCausalLM,
        full_config=_config,
        tiny_overrides=TINY,
        components=COMPONENTS,
        upstream_keys=_model_type,
        source=_SOURCE.format(name=_name, size=_size),
        notes=(_NOTE_LORA,),
        export_side_weights=export_vision_tower,
    ))

__all__ = ["COMPONENTS", "YiVLConfig", "YiVLForCausalLM", "load_vision_tower"]
