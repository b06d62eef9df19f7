"""Template data: a frozen dataclass per template type, registered once (duplicates refused).

A template is four lists of *elements* (ms-swift 2.2.0's layout). An element is either text or a tuple of
token ids / tokenizer attribute names (``('bos_token_id',)``)::

    prefix + [prompt(query) + response + chat_sep] * history + prompt(query) + response + suffix
    system_prefix replaces prefix when a system prompt is in effect.

Text may hold ``{{SYSTEM}}``, ``{{QUERY}}``, ``{{ROUND0}}``, ``{{ROUND1}}``; ``'{{RESPONSE}}'`` marks the response.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ..registry import Registry

IdElement = tuple[int | str, ...]
Element = str | IdElement

InferMediaType = Literal["round", "dialogue", "none"]


@dataclass(frozen=True)
class ImageSlot:
    """Marks where image ``index`` goes in a context list; the family's media step expands it."""

    index: int


@dataclass(frozen=True)
class TemplateMeta:
    """Everything that defines one template type, as data.

    ``media`` names the per-family media step (see ``vlmref.templates.media``); ``image_placeholder`` is what an
    ``<image>`` tag becomes before tokenization (``ImageSlot`` entries are expanded after tokenization; text may use
    ``{{PATH}}`` for the image reference). ``deviations`` records every deliberate difference from ms-swift 2.2.0,
    each with its source.
    """

    template_type: str
    prefix: tuple[Element, ...]
    prompt: tuple[Element, ...]
    chat_sep: tuple[Element, ...] | None
    suffix: tuple[Element, ...]
    system_prefix: tuple[Element, ...] | None = None
    default_system: str | None = None
    infer_media_type: InferMediaType = "none"
    media: str = "text"
    image_placeholder: tuple[Element | ImageSlot, ...] = ()
    max_images: int | None = None
    image_paths_only: bool = False
    user_markup: tuple[str, ...] = ()  # special tokens a user may type on purpose (Qwen-VL <img>, <ref>, <box>)
    lazy_tokenize: bool = False
    stop_words: tuple[str, ...] = ()
    deviations: tuple[str, ...] = ()
    source: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def supports_system(self) -> bool:
        return self.system_prefix is not None

    @property
    def supports_multi_round(self) -> bool:
        return self.chat_sep is not None


TEMPLATES: Registry[TemplateMeta] = Registry("template_type")


def register_template(meta: TemplateMeta) -> TemplateMeta:
    """Register ``meta`` under its ``template_type`` (and aliases); a name can be registered only once."""
    if meta.default_system is not None and meta.system_prefix is None:
        raise ValueError(f"template {meta.template_type!r}: a default_system needs a system_prefix")
    return TEMPLATES.register(meta.template_type, meta, aliases=meta.aliases)


_MARKER = re.compile(r"<\|[^|<>]+\|>|\[UNUSED_TOKEN_\d+\]|</?s>|<image>|</?img>|<imgpad>|<pad>|<unk>")


def template_markers(meta: TemplateMeta) -> set[str]:
    """Special-token strings a template writes as text (``<|im_start|>``, ``[UNUSED_TOKEN_146]``, ``<s>``, ...)."""
    parts = (meta.prefix, meta.prompt, meta.chat_sep or (), meta.suffix, meta.system_prefix or ())
    return {m for part in parts for e in part if isinstance(e, str) for m in _MARKER.findall(e)}
