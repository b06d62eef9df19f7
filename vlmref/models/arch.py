"""Architecture registry: how each model type is built (full size or tiny) and how its parameters group.

Each family's ``arch_module`` (``vlmref/models/<family>/arch.py``) registers one ``ArchSpec`` per model type::

    register_arch(ArchSpec(
        model_type="qwen-vl-chat", family="qwen_vl",
        config_class=QWenVLConfig, model_class=QWenVLForCausalLM,
        full_config=QWEN_VL_CHAT,              # dict in the upstream config.json's field names
        tiny_overrides=TINY,                   # dict merged over full_config for the tiny model
        components={"vision_tower": ("transformer.visual.conv1", ...), "projector": (...),
                    "language_model": ("transformer.wte", "transformer.h", "transformer.ln_f"), "lm_head": ("lm_head",)},
        upstream_keys="qwen-vl-chat",          # golden/arch/<name>.json: recorded upstream key -> shape list
        source="Qwen/Qwen-VL-Chat config.json (...); modeling_qwen.py / visual.py (...)",
    ))

The model contract every family follows (what the collator produces and the trainer/generator pass):

``forward(input_ids, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
labels=None, use_cache=None, pixel_values=None, images_per_sample=None, <family extras>, **kwargs)``
(``past_key_values=`` is the same as ``cache=``, whichever transformers' ``generate()`` uses; ``vlmref.models.kv_cache``)
returns ``transformers.modeling_outputs.CausalLMOutputWithPast`` (``loss`` = mean token cross-entropy over labels
!= -100 after the usual shift). Image features replace exactly the positions the template reserved
(``image_spans``); image inputs are consumed only on the first (prefill) step of ``generate()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..name_registry import Registry

COMPONENTS = ("vision_tower", "projector", "language_model", "lm_head")


@dataclass(frozen=True)
class ArchSpec:
    """One model type's architecture: config class + values, model class, parameter groups, upstream keys."""

    model_type: str
    family: str
    config_class: Any
    model_class: Any
    full_config: dict[str, Any]
    tiny_overrides: dict[str, Any]
    components: dict[str, tuple[str, ...]]  # component -> module-name prefixes (state-dict key prefixes)
    upstream_keys: str  # name of golden/arch/<name>.json
    source: str = ""
    # names (suffixes) peft's "ALL" must not wrap besides the output head, e.g. a vision tower's own head
    lora_all_exclude: tuple[str, ...] = ()
    # regex -> replacement applied to checkpoint keys on load (transformers ``from_pretrained(key_mapping=...)``),
    # for upstream layouts that differ from the module tree (lmms-lab LLaVA-NeXT)
    key_mapping: dict[str, str] | None = None
    # called as after_load(model, folder) once weights are in (e.g. Yi-VL's vision tower in a subfolder)
    after_load: Callable[[Any, Any], None] | None = None
    # called as export_side_weights(merged_model, base_dir, target) when a merged model is exported, for weights the
    # family keeps in files of their own (Yi-VL: the vision tower under vit/)
    export_side_weights: Callable[[Any, Any, Any], None] | None = None
    # optional hook: full_config -> config dict with a given tokenizer's vocab/special ids (tiny checkpoints)
    adapt_to_tokenizer: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None
    notes: tuple[str, ...] = field(default=())

    def config_dict(self, tiny: bool = False, **overrides: Any) -> dict[str, Any]:
        """Full-size (or tiny) config values, nested dicts merged key by key, then ``overrides``."""
        out = _merge(self.full_config, self.tiny_overrides) if tiny else _merge(self.full_config, {})
        return _merge(out, overrides)

    def build_config(self, tiny: bool = False, **overrides: Any):
        return self.config_class(**self.config_dict(tiny, **overrides))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _import_arch_modules() -> None:
    """Import each family's ``arch_module`` (they register their ``ArchSpec``s; this imports torch)."""
    import importlib

    from .family import arch_modules

    for name in arch_modules():
        importlib.import_module(name)


ARCHS: Registry[ArchSpec] = Registry("architecture", populate=_import_arch_modules)


def register_arch(spec: ArchSpec) -> ArchSpec:
    from .model_types import MODELS

    if spec.model_type not in MODELS:
        raise KeyError(f"{spec.model_type!r} is not a registered model type")
    return ARCHS.register(MODELS.canonical(spec.model_type), spec)


def get_arch(model_type: str) -> ArchSpec:
    """The ``ArchSpec`` of ``model_type`` (seed name or alias); imports the families' architectures (and torch) on
    first use."""
    from .model_types import MODELS

    return ARCHS.get(MODELS.canonical(model_type))
