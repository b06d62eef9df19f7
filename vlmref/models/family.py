"""What a model family registers, as one record: ``FamilySpec``; ``register_family`` files each part where it is read.

A family package ``vlmref/models/<family>/`` (or a plugin's, see ``vlmref.families``) ends its ``family.py`` with::

    FAMILY = register_family(FamilySpec(
        name="qwen_vl",
        model_types=(ModelMeta(model_type="qwen-vl-chat", template="qwen-vl", ...),),
        templates=(QWEN, QWEN_VL, SWIFT_QWEN, SWIFT_QWEN_VL),          # any profile
        media_steps={"qwen_vl": QwenVLMedia},                         # TemplateMeta.media -> step class
        image_processors={"qwen_vl": "vlmref.models.qwen_vl.processing:QwenVLImageProcessor"},
        arch_module="vlmref.models.qwen_vl.arch",                     # registers the ArchSpecs (imports torch)
    ))

Everything but ``arch_module`` and the processors is pure data, so the family is known without torch. Names are
refused twice across families (model types and aliases, templates, media steps, families).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..families import load_families
from ..name_registry import Registry
from ..templates.media import MEDIA_STEPS, MediaStep, register_media_step
from ..templates.meta import TemplateMeta, register_template, template_registry
from .model_types import MODELS, ModelMeta


@dataclass(frozen=True)
class FamilySpec:
    """One family's parts. ``image_processors`` map a media name to ``"module:Class"`` (an ``ImageProcessor`` whose
    ``from_options(options)`` builds it from the model type's ``media_options``); ``swift_attention`` is the attention
    implementation ms-swift 2.2.0's documented runs used (memory predictions of the seeds' rows); ``legacy_fp32_logits``:
    the model code of those runs (transformers 4.4x's Llama/Mistral heads, the remote code) returned the output head's
    logits as float32 (``vlmref memory --legacy_stack``); ``golden_tokenizers``
    name the tokenizer that pins a template no model type uses (``vlmref.testing.golden.template_tokenizer``)."""

    name: str
    model_types: tuple[ModelMeta, ...]
    templates: tuple[TemplateMeta, ...] = ()
    media_steps: Mapping[str, type[MediaStep]] = field(default_factory=dict)
    image_processors: Mapping[str, str] = field(default_factory=dict)
    arch_module: str | None = None
    swift_attention: str = "eager"
    legacy_fp32_logits: bool = False
    golden_tokenizers: Mapping[str, tuple[str, Any]] = field(default_factory=dict)  # template -> (model type, spec)
    source: str = ""


FAMILIES: Registry[FamilySpec] = Registry("model family", populate=load_families)


def register_family(spec: FamilySpec) -> FamilySpec:
    """Register ``spec`` and each of its parts (model types, templates, media steps). Every name is checked first, so
    a taken one raises before anything is registered."""
    _refuse_taken(FAMILIES, [spec.name])
    _refuse_taken(MEDIA_STEPS, list(spec.media_steps))
    for meta in spec.templates:
        _refuse_taken(template_registry(meta.profile), [meta.template_type, *meta.aliases])
    _refuse_taken(MODELS, [name for meta in spec.model_types for name in (meta.model_type, *meta.aliases)])
    FAMILIES.register(spec.name, spec)
    for name, step in spec.media_steps.items():
        register_media_step(name, step)
    for meta in spec.templates:
        register_template(meta)
    for meta in spec.model_types:
        MODELS.register(meta.model_type, meta, aliases=meta.aliases)
    return spec


def _refuse_taken(registry: Registry, names: list[str]) -> None:
    for name in names:
        if name in registry or names.count(name) > 1:
            raise ValueError(f"{registry.kind} {name!r} is already registered")


def _families() -> list[FamilySpec]:
    return [FAMILIES.get(name) for name in FAMILIES.names()]


def family_of(model_type: str) -> FamilySpec:
    """The family that registered ``model_type`` (or an alias)."""
    canonical = MODELS.canonical(model_type)
    return next(f for f in _families() if any(m.model_type == canonical for m in f.model_types))


def family_of_media(media: str) -> FamilySpec | None:
    """The family whose media step is ``media`` (``None`` for the text-only step)."""
    return next((f for f in _families() if media in f.media_steps), None)


def image_processor_class(media: str) -> Any | None:
    """The ``ImageProcessor`` class for ``media`` (imported on demand: processors use torch), else ``None``."""
    spec = family_of_media(media)
    ref = spec.image_processors.get(media) if spec is not None else None
    if ref is None:
        return None
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def arch_modules() -> list[str]:
    """The modules that register the families' architectures, in family order."""
    return [f.arch_module for f in _families() if f.arch_module]
