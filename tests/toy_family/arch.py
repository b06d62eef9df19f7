"""The toy architecture (imports torch): ``ToyForCausalLM`` over ``ToyConfig``.

    >>> from vlmref.models.arch import get_arch
    >>> get_arch("toy-vlm").components["projector"]
    ('projector',)
"""

from __future__ import annotations

from vlmref.models.arch import ArchSpec, register_arch

from .config import TINY, TOY_VLM, ToyConfig
from .modeling import ToyForCausalLM

COMPONENTS = {
    "vision_tower": ("vision_tower",),
    "projector": ("projector",),
    "language_model": ("model.embed_tokens", "model.layers", "model.norm"),
    "lm_head": ("lm_head",),
}

SPEC = register_arch(ArchSpec(
    model_type="toy-vlm",
    family="toy",
    config_class=ToyConfig,
    model_class=ToyForCausalLM,
    full_config=TOY_VLM,
    tiny_overrides=TINY,
    components=COMPONENTS,
    upstream_keys="toy-vlm",
    source="tests/toy_family: transformers LlamaModel + patchify Linear + MLP projector (no upstream model)",
))

__all__ = ["COMPONENTS", "SPEC", "ToyConfig", "ToyForCausalLM"]
