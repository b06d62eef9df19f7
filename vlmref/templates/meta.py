"""Template data: a frozen dataclass per template type, registered once (duplicates refused).

A template is four lists of *elements* (ms-swift 2.2.0's layout). An element is either text or a tuple of
token ids / tokenizer attribute names (``('bos_token_id',)``)::

    prefix + [prompt(query) + response + chat_sep] * history + prompt(query) + response + suffix
    system_prefix replaces prefix when a system prompt is in effect.

Text may hold ``{{SYSTEM}}``, ``{{QUERY}}``, ``{{ROUND0}}``, ``{{ROUND1}}``; ``'{{RESPONSE}}'`` marks the response.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..families import load_families
from ..name_registry import Registry

IdElement = tuple[int | str, ...]
Element = str | IdElement

InferMediaType = Literal["round", "dialogue", "none"]

OFFICIAL = "official"
SWIFT_2_2_0 = "swift-2.2.0"
PROFILES = (OFFICIAL, SWIFT_2_2_0)
DEFAULT_PROFILE = OFFICIAL
# the tags ms-swift 2.2.0 splits every string on when a sample is multimodal (Template.special_tokens)
SWIFT_SPLIT_TAGS = ("<video_label>", "<audio_label>", "<bbox>", "<ref-object>")


@dataclass(frozen=True)
class Deviation:
    """One recorded difference of the ``official`` profile from ms-swift 2.2.0, with its source in ``text``.

    ``swift`` holds the ``TemplateMeta`` fields that give ms-swift 2.2.0's behaviour instead; the ``swift-2.2.0``
    profile is the official meta with every deviation's ``swift`` fields applied, and a difference between the two
    profiles on a sample is explained by the smallest set of deviations whose fields turn one into the other::

        Deviation("llava-qwen-system-period", "default system ... with the period ...",
                  (("default_system", "You are a helpful assistant"),))
    """

    id: str
    text: str
    swift: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        return f"{self.id}: {self.text}"


def deviation(id: str, text: str, **swift: Any) -> Deviation:
    return Deviation(id, text, tuple(swift.items()))


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
    deviations: tuple[Deviation, ...] = ()
    source: str = ""
    aliases: tuple[str, ...] = field(default=())
    # ---- profile: which behaviour the engine follows (see ``swift_variant``) ----
    profile: str = OFFICIAL
    quirks: tuple[Deviation, ...] = ()  # swift-2.2.0 profile: the official deviations it undoes, i.e. swift's quirks
    protect_caller_text: bool = True  # special-token text in query/response/system stays plain text
    truncate_before_media: bool = False  # max_length applies to the ids before image expansion (ms-swift 2.2.0)
    split_tags: tuple[str, ...] = ()  # extra tags strings are split on when the sample has images
    reply_markup_check: bool = True  # refuse Qwen-VL <img> in replies (ms-swift tokenizes it as a supervised image)
    tokenizer_added_tokens: bool = True  # False: the model's tokenizer is used without vlmref's added <image> token
    tokenizer_prefix_policy: str | None = None  # sentencepiece models: where '▁' goes (vlmref.tokenizers.sentencepiece)
    # ---- model-side media (see ``vlmref.templates.media.ModelSideMedia``) ----
    # the media step the model applies to the one marker per image this meta leaves in input_ids (ms-swift 2.2.0:
    # the upstream model expanded it in forward), and that marker: an id (-200) or a token looked up in the tokenizer
    model_media: str | None = None
    model_media_marker: int | str | None = None

    @property
    def supports_system(self) -> bool:
        return self.system_prefix is not None

    @property
    def supports_multi_round(self) -> bool:
        return self.chat_sep is not None


TEMPLATES: Registry[TemplateMeta] = Registry("template_type", populate=load_families)
SWIFT_TEMPLATES: Registry[TemplateMeta] = Registry(f"{SWIFT_2_2_0} template_type", populate=load_families)
_REGISTRIES = {OFFICIAL: TEMPLATES, SWIFT_2_2_0: SWIFT_TEMPLATES}


def template_registry(profile: str = DEFAULT_PROFILE) -> Registry[TemplateMeta]:
    """The registry of one profile: ``official`` (vlmref's corrected behaviour) or ``swift-2.2.0`` (ms-swift's exact)."""
    try:
        return _REGISTRIES[profile]
    except KeyError:
        raise ValueError(f"unknown template profile {profile!r}; known: {', '.join(PROFILES)}") from None


def get_template_meta(template_type: str, profile: str = DEFAULT_PROFILE) -> TemplateMeta:
    """The meta of ``template_type`` (or an alias) in ``profile``; a type the profile lacks is a named error."""
    registry = template_registry(profile)
    if template_type not in registry and template_type in TEMPLATES:
        from ..errors import TemplateInputError

        raise TemplateInputError(template_type, "template_profile",
                                 f"ms-swift 2.2.0 has no {template_type!r} template; use profile {OFFICIAL!r}",
                                 "profile_unsupported")
    return registry.get(template_type)


def template_profile_error(template_type: str, profile: str, max_length_counts_images: bool = False) -> str | None:
    """Why ``--template_profile profile`` cannot run ``template_type`` (one line, naming the flag), else ``None``.

    >>> template_profile_error("yi-vl", "swift-2.3")
    "--template_profile 'swift-2.3': expected one of official, swift-2.2.0"
    """
    if profile not in _REGISTRIES:
        return f"--template_profile {profile!r}: expected one of {', '.join(PROFILES)}"
    registry = _REGISTRIES[profile]
    if template_type not in registry:
        if template_type in TEMPLATES:
            return (f"--template_profile {profile}: ms-swift 2.2.0 has no {template_type!r} template; use "
                    f"--template_profile {OFFICIAL}")
        return None  # an unknown template type is reported where it is looked up
    if max_length_counts_images and registry.get(template_type).truncate_before_media:
        return (f"--max_length_counts_images true with --template_profile {profile}: this profile cuts max_length "
                "from the text before images are expanded (ms-swift 2.2.0's budget); use one or the other")
    return None


def register_template(meta: TemplateMeta) -> TemplateMeta:
    """Register ``meta`` under its ``template_type`` (and aliases) in its profile; a name can be registered once."""
    if meta.default_system is not None and meta.system_prefix is None:
        raise ValueError(f"template {meta.template_type!r}: a default_system needs a system_prefix")
    return template_registry(meta.profile).register(meta.template_type, meta, aliases=meta.aliases)


def apply_deviations(official: TemplateMeta, deviations: tuple[Deviation, ...]) -> TemplateMeta:
    """``official`` with ms-swift 2.2.0's behaviour for each of ``deviations`` (registered nowhere)."""
    changes: dict[str, Any] = {}
    for dev in deviations:
        changes.update(dev.swift)
    return replace(official, **changes)


def swift_variant(official: TemplateMeta) -> TemplateMeta:
    """The ``swift-2.2.0`` profile of ``official``: ms-swift 2.2.0's exact ids and labels, quirks included.

    Every official deviation is undone (its ``swift`` fields applied); they become the profile's ``quirks``.
    """
    undone = tuple(d for d in official.deviations if d.swift)
    meta = apply_deviations(official, undone)
    return replace(meta, profile=SWIFT_2_2_0, deviations=(), quirks=undone)


# ---- deviations shared by several families ----------------------------------------------------------------------
TYPED_SPECIAL_TOKENS = deviation(
    "typed-special-tokens",
    "special-token text typed in a query, response or system (<|im_end|>, </s>, [INST] ...) stays plain text; "
    "ms-swift 2.2.0 tokenizes it as the special token, so a user can end a turn or forge a role",
    protect_caller_text=False,
)
MAX_LENGTH_COUNTS_IMAGES = deviation(
    "max-length-counts-images",
    "max_length and truncation_left count the image positions and never cut through an image; ms-swift 2.2.0 cuts "
    "the ids before the images are expanded, so a sample can exceed max_length by its image positions",
    truncate_before_media=True,
)
SPLIT_TAGS = deviation(
    "split-media-tags",
    "only <image> splits text; with images in a sample ms-swift 2.2.0 also splits on <video_label>, <audio_label>, "
    "<bbox> and <ref-object>, so a reply containing one is tokenized in pieces",
    split_tags=SWIFT_SPLIT_TAGS,
)
MEDIA_DEVIATIONS = (MAX_LENGTH_COUNTS_IMAGES, SPLIT_TAGS)
YI_FAST_TOKENIZER_PREFIX = deviation(
    "yi-fast-tokenizer-prefix",
    "text segments are encoded as Yi's sentencepiece model does (add_dummy_prefix=false: no '▁' in front); "
    "ms-swift 2.2.0 loads the Yi tokenizer with AutoTokenizer, a fast tokenizer that transformers 4.41 converts with "
    "the config's legacy=true, whose Prepend('▁') normalizer puts a '▁' before every segment ('This' -> '▁This')",
    tokenizer_prefix_policy="every_chunk",
)


_MARKER = re.compile(r"<\|[^|<>]+\|>|\[UNUSED_TOKEN_\d+\]|</?s>|<image>|</?img>|<imgpad>|<pad>|<unk>")


def template_markers(meta: TemplateMeta) -> set[str]:
    """Special-token strings a template writes as text (``<|im_start|>``, ``[UNUSED_TOKEN_146]``, ``<s>``, ...)."""
    parts = (meta.prefix, meta.prompt, meta.chat_sep or (), meta.suffix, meta.system_prefix or ())
    return {m for part in parts for e in part if isinstance(e, str) for m in _MARKER.findall(e)}
