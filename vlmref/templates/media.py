"""Per-family media steps: turn image slots in a tokenized sample into the positions the model fills.

A step runs after segment-wise tokenization. It knows how many LLM positions each image takes and which id
fills them, and adds the family's extras::

    qwen_vl      <img>PATH</img> is expanded by the Qwen-VL tokenizer itself (258 ids); spans are found in the ids
    cogvlm       1227 x pad_token_id right after BOS, token_type_ids 1 there
    xcomposer2   N x IMAGE_SENTINEL at each slot, im_mask 1 there (N = 256 for the 7b at 224 px; HD count for 2.5)
    yi_vl        1024 x IMAGE_SENTINEL at each slot (448 px CLIP ViT-H/14)
    llava_next   anyres count x the tokenizer's <image> id at each slot, image_sizes (h, w) per image

The ``swift-2.2.0`` profile has two steps of its own (``swift_cogvlm``, ``swift_xcomposer2``) that redo what
ms-swift 2.2.0's ``CogTemplate.encode`` and ``InternLMXComposer2.encode`` do to the (already cut) ids. Its llava and
yi-vl templates leave one marker per image for the model; ``ModelSideMedia`` expands those for vlmref's models.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ImageLoadError, TemplateInputError
from .image_tokens import LLAVA_NEXT_GRID_PINPOINTS, llava_next_image_tokens, xcomposer2_5_image_tokens
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

    Two class attributes say how a step's image spans read (``vlmref.llm.sample_view``, ``vlmref render``):
    ``span_frame`` = ids at the (start, end) of each span that are the family's delimiters, not image positions
    (Qwen-VL: ``<img>``, ``</img>``); ``images_outside_text`` = the step inserts the positions where the rendered text
    shows no image (CogVLM: after BOS), so ``render`` adds a line ``+ ⟦image 0⟧ at ids[1:1228]``."""

    span_frame: tuple[int, int] = (0, 0)
    images_outside_text = False

    def __init__(self, meta: TemplateMeta, tokenizer: Any, *, media_root: str | None = None, **options: Any) -> None:
        self.meta = meta
        self.tokenizer = tokenizer
        self.media_root = media_root
        self.options = options

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


QWEN_VL_PATH_BYTES = 256  # the Qwen-VL tokenizer's IMG_TOKEN_SPAN: an image reference fills 256 byte ids


class QwenVLMedia(MediaStep):
    """Images are ``<img>PATH</img>`` text; the Qwen-VL tokenizer makes them 258 ids. Spans are read from the ids.

    Inline markup is checked before tokenizing (``inline_markup_error``), and every path must fit the 256-byte span,
    so a malformed row is a ``TemplateInputError`` (``image_markup`` / ``path_too_long``), not the tokenizer's bare
    ``ValueError``."""

    span_frame = (1, 1)  # a span is <img> + 256 path-byte / <imgpad> positions + </img>

    def collect_inline_images(self, query, history, images):
        t = self.meta.template_type
        for field_name, text in zip(user_turn_fields(len(history)), [q for q, _ in history] + [query], strict=True):
            for _start, _end, path in inline_images_or_error(text, t, field_name):
                _check_path_bytes(path, t, field_name)
        for i, image in enumerate(images):
            if isinstance(image, str):
                _check_path_bytes(image, t, f"images[{i}]")
        return query, history, images, []

    def expand(self, ctx: MediaContext) -> MediaContext:
        start_id = self.tokenizer.convert_tokens_to_ids("<img>")
        end_id = self.tokenizer.convert_tokens_to_ids("</img>")
        pad_id = self.tokenizer.convert_tokens_to_ids("<imgpad>")
        spans, paths = [], []
        ids = ctx.input_ids
        i = 0
        while i < len(ids):
            if ids[i] == start_id:
                j = ids.index(end_id, i)
                body = ids[i + 1 : j]
                raw = bytes(b for b in (body[: body.index(pad_id)] if pad_id in body else body))
                paths.append(raw.decode("utf-8", errors="replace"))
                spans.append((i, j - i + 1))
                i = j + 1
            else:
                i += 1
        return MediaContext(input_ids=ids, labels=ctx.labels, images=paths, spans=spans)


class CogVLMMedia(MediaStep):
    """One image: ``vision_tokens`` pad ids right after BOS (position 0), ``token_type_ids`` 1 on them."""

    images_outside_text = True

    def expand(self, ctx: MediaContext) -> MediaContext:
        n_text = len(ctx.input_ids)
        if not ctx.images:
            return MediaContext(ctx.input_ids, ctx.labels, images=[], token_extras={"token_type_ids": [0] * n_text})
        n = int(self.options.get("vision_tokens", 1227))
        pad = self.tokenizer.pad_token_id
        ids = ctx.input_ids[:1] + [pad] * n + ctx.input_ids[1:]
        labels = ctx.labels[:1] + [-100] * n + ctx.labels[1:]
        ttype = [0] + [1] * n + [0] * (n_text - 1)
        return MediaContext(ids, labels, images=ctx.images, spans=[(1, n)], token_extras={"token_type_ids": ttype})


QWEN_VL_PATH_EXPECTED = (f"a local path or http(s) URL of at most {QWEN_VL_PATH_BYTES} UTF-8 bytes (Qwen-VL reads "
                         "images by path; the reference fills its 256-byte <img> span)")


def _check_path_bytes(path: str, template_type: str, field_name: str) -> None:
    size = len(path.encode("utf-8"))
    if size > QWEN_VL_PATH_BYTES:
        found = f"{size} bytes: {path[:37] + '...' if len(path) > 40 else path!r}"
        raise TemplateInputError(template_type, field_name, f"expected {QWEN_VL_PATH_EXPECTED}; found {found}",
                                 "path_too_long", expected=QWEN_VL_PATH_EXPECTED, found=found)


def inline_markup_error(err: InlineMarkupError, template_type: str, field_name: str) -> TemplateInputError:
    """The named error for malformed ``<img>`` markup in one user turn (reason ``image_markup``)."""
    return TemplateInputError(template_type, field_name, f"expected {INLINE_EXPECTED}; found {err}", "image_markup",
                              expected=INLINE_EXPECTED, found=str(err))


def inline_images_or_error(text: str, template_type: str, field_name: str) -> list[tuple[int, int, str]]:
    try:
        return find_inline_images(text)
    except InlineMarkupError as err:
        raise inline_markup_error(err, template_type, field_name) from None


def _take_inline_images(query: str, history: list[list[str]], replacement: str, template_type: str):
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


class XComposer2Media(MediaStep):
    """``<img>PATH</img>`` in user text become image slots (ms-swift's regex); ``im_mask`` marks image rows."""

    def collect_inline_images(self, query, history, images):
        query, history, found = _take_inline_images(query, history, "<image>", self.meta.template_type)
        if found and any(images):
            raise TemplateInputError(
                self.meta.template_type, "images", "inline <img> tags and an images column in one sample are ambiguous; use one"
            )
        return query, history, found or images, []

    def counts(self, ctx: MediaContext) -> list[int]:
        if self.meta.media == "xcomposer2_5":
            hd_num = int(self.options.get("hd_num", 24 if len(ctx.images) <= 1 else 6))
            sizes = [image_hw(ctx.images[i], self.media_root, self.meta.template_type, i) for _, i in ctx.slots]
            return [xcomposer2_5_image_tokens(h, w, hd_num=hd_num) for h, w in sizes]
        return [int(self.options.get("image_tokens", 256))] * len(ctx.slots)

    def expand(self, ctx: MediaContext) -> MediaContext:
        out = self._repeat_slots(ctx, self.counts(ctx), IMAGE_SENTINEL, "im_mask")
        if self.meta.media == "xcomposer2_5" and ctx.slots:
            # the tiling budget each image was counted with; it stays right if truncation_left drops an image
            hd_num = int(self.options.get("hd_num", 24 if len(ctx.images) <= 1 else 6))
            out.image_extras["hd_num"] = [hd_num] * len(ctx.slots)
        return out


class YiVLMedia(MediaStep):
    """Each slot becomes ``image_tokens`` (default (448/14)^2 = 1024) sentinel positions."""

    def expand(self, ctx: MediaContext) -> MediaContext:
        n = int(self.options.get("image_tokens", 1024))
        return self._repeat_slots(ctx, [n] * len(ctx.slots), IMAGE_SENTINEL, None)


class LlavaNextMedia(MediaStep):
    """Each slot becomes the anyres count of ``<image>`` ids, as transformers' LlavaNext expects."""

    def expand(self, ctx: MediaContext) -> MediaContext:
        image_id = self.options.get("image_token_id")  # the model config's image_token_index, when the caller has it
        if image_id is None:
            image_id = token_id_of(self.tokenizer, "<image>", self.meta.template_type)
        pinpoints = self.options.get("image_grid_pinpoints", LLAVA_NEXT_GRID_PINPOINTS)
        sizes = [image_hw(ctx.images[i], self.media_root, self.meta.template_type, i) for _, i in ctx.slots]
        counts = [llava_next_image_tokens(h, w, pinpoints=pinpoints) for h, w in sizes]
        out = self._repeat_slots(ctx, counts, int(image_id), None)
        out.image_extras["image_sizes"] = [[h, w] for h, w in sizes]
        return out


class SwiftCogVLMMedia(CogVLMMedia):
    """ms-swift 2.2.0 ``CogTemplate.encode``: the vision positions go after the first id of the cut sequence."""

    def expand(self, ctx: MediaContext) -> MediaContext:
        if not ctx.images:
            raise TemplateInputError(
                self.meta.template_type,
                "images",
                "ms-swift 2.2.0 cannot encode a CogVLM sample without an image (CogTemplate.encode passes an empty "
                "image to build_conversation_input_ids, which fails); use profile 'official'",
                "swift_unsupported",
            )
        return super().expand(ctx)


SWIFT_XCOMPOSER2_BOS, SWIFT_XCOMPOSER2_SPLIT = 1, 2  # ids ms-swift 2.2.0 hard-codes (<s>, </s>)


class SwiftXComposer2Media(MediaStep):
    """ms-swift 2.2.0 ``InternLMXComposer2.encode``, on ids::

        inline <img>P</img> -> '</s>' text; with any image the first id is dropped; a dummy 2 is appended;
        the ids are split at every 2 and each part becomes [1] + part, followed by image k (while k < #images)

    so a text-only sample starts ``<s><s>``, and images from the images column (whose ``<image>`` tags stay plain
    text) come after the last text part.
    """

    images_outside_text = True

    def collect_inline_images(self, query, history, images):
        query, history, found = _take_inline_images(query, history, "</s>", self.meta.template_type)
        return query, history, images, found

    def expand(self, ctx: MediaContext) -> MediaContext:
        n = int(self.options.get("image_tokens", 256))
        ids, labels = list(ctx.input_ids), list(ctx.labels)
        if ctx.images:
            ids, labels = ids[1:], labels[1:]
        ids.append(SWIFT_XCOMPOSER2_SPLIT)
        labels.append(SWIFT_XCOMPOSER2_SPLIT)
        out_ids: list[int] = []
        out_labels: list[int] = []
        mask: list[int] = []
        spans: list[tuple[int, int]] = []
        start = index = 0
        for i, token in enumerate(ids):
            if token != SWIFT_XCOMPOSER2_SPLIT:
                continue
            out_ids += [SWIFT_XCOMPOSER2_BOS, *ids[start:i]]
            out_labels += [-100, *labels[start:i]]
            mask += [0] * (i - start + 1)
            if index < len(ctx.images):
                spans.append((len(out_ids), n))
                out_ids += [IMAGE_SENTINEL] * n
                out_labels += [-100] * n
                mask += [1] * n
            index += 1
            start = i + 1
        images = ctx.images[: len(spans)]
        return MediaContext(out_ids, out_labels, images=images, spans=spans, token_extras={"im_mask": mask})


_STEPS: dict[str, type[MediaStep]] = {
    "text": MediaStep,
    "qwen_vl": QwenVLMedia,
    "cogvlm": CogVLMMedia,
    "xcomposer2": XComposer2Media,
    "xcomposer2_5": XComposer2Media,
    "yi_vl": YiVLMedia,
    "llava_next": LlavaNextMedia,
    "swift_cogvlm": SwiftCogVLMMedia,
    "swift_xcomposer2": SwiftXComposer2Media,
}


def get_media_step(name: str) -> type[MediaStep]:
    try:
        return _STEPS[name]
    except KeyError:
        raise KeyError(f"unknown media step {name!r}; known: {sorted(_STEPS)}") from None


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
