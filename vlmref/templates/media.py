"""Media steps: turn image slots in a tokenized sample into the positions the model fills.

A step runs after segment-wise tokenization. It knows how many LLM positions each image takes
(``tokens_per_image``) and which id fills them, and adds the family's extras. Each family package registers its
steps (``vlmref/models/<family>/media.py``, named by ``TemplateMeta.media``); this module holds the base class, the
registry and what steps share::

    qwen_vl      <img>PATH</img> is expanded by the Qwen-VL tokenizer itself (258 ids); spans are found in the ids
    cogvlm       1227 x pad_token_id right after BOS, token_type_ids 1 there
    llava_next   anyres count x the tokenizer's <image> id at each slot, image_sizes (h, w) per image

The ``swift-2.2.0`` profile's llava and yi-vl templates leave one marker per image for the model;
``ModelSideMedia`` expands those with the official profile's step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ImageLoadError, TemplateInputError
from ..families import load_families
from ..name_registry import Registry
from .inline_images import EXPECTED as INLINE_EXPECTED
from .inline_images import InlineMarkupError, find_inline_images, replace_inline_images, user_turn_fields
from .meta import TemplateMeta

IMAGE_SENTINEL = -200  # LLaVA's IMAGE_TOKEN_INDEX: an id no embedding has, so a missed image fails loudly


@dataclass
class MediaContext:
    """A tokenized sample before/after its media step. ``token_extras`` align with ids, ``image_extras`` with images."""

    input_ids: list[int]
    labels: list[int]
    slots: list[tuple[int, int]] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    token_extras: dict[str, list[int]] = field(default_factory=dict)
    image_extras: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def extras(self) -> dict[str, list]:
        return {**self.token_extras, **self.image_extras}

    def image_token_count(self) -> int:
        return sum(n for _, n in self.spans)

    def truncate_left(self, max_length: int, template_type: str, max_images: int | None) -> MediaContext:
        """Keep the last ``max_length`` positions, moving the cut forward so that no image span is split."""
        start = len(self.input_ids) - max_length
        for s, n in self.spans:
            if s < start < s + n:
                start = s + n
        kept = [i for i, (s, _) in enumerate(self.spans) if s >= start]
        return MediaContext(
            input_ids=self.input_ids[start:],
            labels=self.labels[start:],
            images=[self.images[i] for i in kept],
            spans=[(self.spans[i][0] - start, self.spans[i][1]) for i in kept],
            token_extras={k: v[start:] for k, v in self.token_extras.items()},
            image_extras={k: [v[i] for i in kept] for k, v in self.image_extras.items()},
        )


def image_hw(image: Any, media_root: str | None, template_type: str, index: int | None = None) -> tuple[int, int]:
    """(height, width) of any image reference (path, URL, base64, data URI, PIL image), from the header only and
    after EXIF rotation (see ``vlmref.datasets.images.image_size``); relative paths are read under ``media_root``.

    An unreadable image is a ``TemplateInputError`` on field ``images[index]`` with reason ``image_<why>``
    (``image_missing``, ``image_corrupt``, ...): the code ``check-data`` gives the same image."""
    from ..datasets.images import image_size

    try:
        return image_size(image, base_dir=media_root)
    except ImageLoadError as err:
        field_name = "images" if index is None else f"images[{index}]"
        raise TemplateInputError(template_type, field_name, str(err), f"image_{err.reason}",
                                 expected="a readable image", found=str(err)) from err


def token_id_of(tokenizer: Any, token: str, template_type: str) -> int:
    """The tokenizer's id of ``token``; a named error when it has none (``None`` or the unknown id)."""
    token_id = tokenizer.convert_tokens_to_ids(token) if tokenizer is not None else None
    if token_id is None or token_id == getattr(tokenizer, "unk_token_id", None):
        raise TemplateInputError(template_type, "tokenizer", f"tokenizer has no {token} token")
    return int(token_id)


class MediaStep:
    """Base step: no images become tokens (text-only templates).

    Class attributes tell generic code what a family's images look like, so it never asks for a family by name:

    * ``span_frame``: ids at the (start, end) of each span that are the family's delimiters, not image positions
      (Qwen-VL: ``<img>``, ``</img>``); ``images_outside_text``: the step inserts the positions where the rendered
      text shows no image (CogVLM: after BOS), so ``render`` adds a line ``+ ⟦image 0⟧ at ids[1:1228]``
      (``vlmref.llm.sample_view``, ``vlmref render``);
    * ``inline_image_syntax``: ``<img>path</img>`` in a user turn is a documented way to give an image;
      ``inline_images_exclusive``: such markup takes the place of the images column (one or the other per sample);
    * ``tokenizer_expands_markup``: the tokenizer itself turns ``markup_tokens`` text into image ids (Qwen-VL), so
      markup outside user turns is refused and decoding shows the markup;
    * ``image_ref_max_bytes`` / ``image_ref_expected``: an image reference is read by the model as a path of at most
      that many UTF-8 bytes (checked on every row of templates with ``image_paths_only``);
    * ``image_required``: why the model refuses a row without an image (the collator's error), else ``None``.
    """

    span_frame: tuple[int, int] = (0, 0)
    images_outside_text = False
    inline_image_syntax = False
    inline_images_exclusive = False
    tokenizer_expands_markup = False
    markup_tokens: tuple[str, ...] = ()
    image_ref_max_bytes: int | None = None
    image_ref_expected = ""
    image_required: str | None = None

    def __init__(self, meta: TemplateMeta, tokenizer: Any, *, media_root: str | None = None, **options: Any) -> None:
        self.meta = meta
        self.tokenizer = tokenizer
        self.media_root = media_root
        self.options = options

    @classmethod
    def tokens_per_image(cls, height: int, width: int, options: dict[str, Any], n_images: int = 1) -> int:
        """LLM positions one ``height`` x ``width`` image takes among ``n_images`` of a sample, with the model type's
        ``media_options``: the one count that templates, processors and the memory model use."""
        raise KeyError(f"media step {cls.__name__} takes no images")

    def collect_inline_images(self, query: str, history: list[list[str]], images: list[Any]):
        """``(query, history, images, leading)``: inline image markup taken out of the user turns; ``leading`` are
        images the media step puts before ``images`` without an ``<image>`` tag (ms-swift's XComposer2 inline)."""
        return query, history, images, []

    def expand(self, ctx: MediaContext) -> MediaContext:
        return ctx

    def _repeat_slots(self, ctx: MediaContext, counts: list[int], fill: int, mask_key: str | None) -> MediaContext:
        """Replace each slot by ``counts[i]`` x ``fill`` with labels -100 (optionally a 0/1 mask extra)."""
        ids, labels, mask, spans = [], [], [], []
        prev = 0
        for (pos, _index), n in zip(ctx.slots, counts, strict=False):
            ids += ctx.input_ids[prev:pos]
            labels += ctx.labels[prev:pos]
            mask += [0] * (pos - prev)
            spans.append((len(ids), n))
            ids += [fill] * n
            labels += [-100] * n
            mask += [1] * n
            prev = pos
        ids += ctx.input_ids[prev:]
        labels += ctx.labels[prev:]
        mask += [0] * (len(ctx.input_ids) - prev)
        out = MediaContext(input_ids=ids, labels=labels, images=ctx.images, spans=spans)
        if mask_key:
            out.token_extras[mask_key] = mask
        return out


def inline_markup_error(err: InlineMarkupError, template_type: str, field_name: str) -> TemplateInputError:
    """The named error for malformed ``<img>`` markup in one user turn (reason ``image_markup``)."""
    return TemplateInputError(template_type, field_name, f"expected {INLINE_EXPECTED}; found {err}", "image_markup",
                              expected=INLINE_EXPECTED, found=str(err))


def inline_images_or_error(text: str, template_type: str, field_name: str) -> list[tuple[int, int, str]]:
    try:
        return find_inline_images(text)
    except InlineMarkupError as err:
        raise inline_markup_error(err, template_type, field_name) from None


def take_inline_images(query: str, history: list[list[str]], replacement: str, template_type: str):
    """ms-swift's ``replace_img_tag``: every ``<img>PATH</img>`` in the user turns becomes ``replacement``; malformed
    markup (which ms-swift's regex leaves in the text) is a ``TemplateInputError`` naming the turn."""
    found: list[str] = []
    fields = user_turn_fields(len(history))

    def take(text: str, field_name: str) -> str:
        try:
            text, paths = replace_inline_images(text, replacement)
        except InlineMarkupError as err:
            raise inline_markup_error(err, template_type, field_name) from None
        found.extend(paths)
        return text

    history = [[take(q, fields[i]), r] for i, (q, r) in enumerate(history)]
    return take(query, "query"), history, found


MEDIA_STEPS: Registry[type[MediaStep]] = Registry("media step", populate=load_families)
MEDIA_STEPS.register("text", MediaStep)


def register_media_step(name: str, step: type[MediaStep]) -> type[MediaStep]:
    """Register ``step`` as the media step ``name`` (``TemplateMeta.media``); a name can be registered once."""
    return MEDIA_STEPS.register(name, step)


def get_media_step(name: str) -> type[MediaStep]:
    return MEDIA_STEPS.get(name)


class ModelSideMedia:
    """Does to ms-swift 2.2.0's image markers what its upstream models did inside ``forward``, on the ids.

    Under ``swift-2.2.0`` the llava and yi-vl templates leave ONE marker per image in ``input_ids``: llava-hf the
    ``<image>`` id of ``'<image>\\n'``, lmms-lab and Yi-VL a -200 before ``'\\n'`` (``TemplateMeta.model_media_marker``).
    vlmref's models take ids already expanded, so ``Template(model_side_media=True)`` (what ``sft`` and ``infer``
    pass; fixture comparison and ``render`` do not) runs this after the swift encode and its cut: each marker is
    removed, an image slot takes its place, and the meta's ``model_media`` step, the official profile's, expands the
    slots: the same position counts, fill id, ``labels`` -100 there and extras (``image_sizes``) as the official
    profile. llava-mistral, one 640x480 image (``vlmref render``-style runs)::

        swift encode   1 733 16289 28793 28705 32000 28705 13 22836 456 3469 28723 733 28748 16289 28793 330 ...
        model-side     1 733 16289 28793 28705 [32000 * 2340] 28705 13 22836 456 3469 28723 733 28748 16289 ...
                       image_spans [[5, 2340]], image_sizes [[480, 640]]; labels [-100 * 2340] at 5..2344

    llava-qwen-instruct: ``... 872 198 -200 198 74785 ...`` becomes ``... 872 198 [151646 * 2340] 198 74785 ...``
    with the fill id from ``options['image_token_id']`` (the model config's ``image_token_index``), as ms-swift's
    lmms-lab tokenizer has no ``<image>`` token. The text around the markers stays swift's, and so does the cut:
    ms-swift applied ``max_length`` before the model expanded images, so a marker cut away by ``truncation_left``
    takes its image with it (the markers left belong to the last images). ``options`` go to the model step.
    """

    def __init__(self, meta: TemplateMeta, tokenizer: Any, *, media_root: str | None = None, **options: Any) -> None:
        if meta.model_media is None or meta.model_media_marker is None:
            raise ValueError(f"template {meta.template_type!r} ({meta.profile}) leaves no image marker for the model")
        self.meta = meta
        self.tokenizer = tokenizer
        self.step = get_media_step(meta.model_media)(replace(meta, media=meta.model_media), tokenizer,
                                                     media_root=media_root, **options)

    def marker_id(self) -> int:
        marker = self.meta.model_media_marker
        if isinstance(marker, int):
            return marker
        return token_id_of(self.tokenizer, str(marker), self.meta.template_type)

    def expand(self, ctx: MediaContext) -> MediaContext:
        marker = self.marker_id()
        positions = [i for i, token in enumerate(ctx.input_ids) if token == marker]
        if len(positions) > len(ctx.images):
            raise TemplateInputError(self.meta.template_type, "images",
                                     f"{len(positions)} image marker(s) {marker} in input_ids but {len(ctx.images)} "
                                     "image(s)", "tag_count")
        drop = set(positions)
        ids = [token for i, token in enumerate(ctx.input_ids) if i not in drop]
        labels = [label for i, label in enumerate(ctx.labels) if i not in drop]
        slots = [(pos - k, k) for k, pos in enumerate(positions)]
        images = ctx.images[len(ctx.images) - len(positions):]
        return self.step.expand(MediaContext(ids, labels, slots=slots, images=images))
