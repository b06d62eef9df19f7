"""The template engine: example -> context list -> segments -> ids/labels, with ms-swift 2.2.0 semantics.

Pipeline of ``Template.encode`` (ms-swift 2.2.0 ``swift/llm/utils/template.py``: ``Template.encode`` / ``_encode``;
the README's "Encoding semantics" section states the rules)::

    example ─ add <image> tags ─ check ─ system ─ context list with loss flags ─ <image> -> placeholder
            ─ merge adjacent unsupervised text ─ tokenize each text segment alone (add_special_tokens=False)
            ─ family media step (expand image slots, extras) ─ truncation (delete | truncation_left)

Everything here is pure Python: the tokenizer is any object with ``encode(text, add_special_tokens=False)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from ..errors import SequenceTooLongError, TemplateInputError
from .media import MediaContext, ModelSideMedia, get_media_step
from .meta import DEFAULT_PROFILE, Element, ImageSlot, TemplateMeta, get_template_meta, template_markers

IMAGE_TAG = "<image>"
_PLACEHOLDERS = ("{{SYSTEM}}", "{{QUERY}}", "{{ROUND0}}", "{{ROUND1}}")
_PLACEHOLDER_RE = re.compile(r"(\{\{SYSTEM\}\}|\{\{QUERY\}\})")
_PLACEHOLDER_SPLITS: dict[str, tuple[str, ...]] = {}  # template element -> _PLACEHOLDER_RE.split of it (constants)
TruncationStrategy = Literal["delete", "truncation_left"]
_SEGMENT_CACHE = 4096  # distinct segment texts kept per template (the constant ones recur in every sample)


class Segment(NamedTuple):
    """One unit of the context list after merging: text, literal ids, or an image slot, with its loss flag.
    (A NamedTuple: immutable like a frozen dataclass, and several times cheaper to build, ~10 per encode.)"""

    value: str | tuple[int, ...] | ImageSlot
    loss: bool
    protected: tuple[tuple[int, int], ...] = ()  # character ranges of caller text (query, response, system)

    @property
    def kind(self) -> str:
        if isinstance(self.value, str):
            return "text"
        return "image" if isinstance(self.value, ImageSlot) else "ids"


@dataclass
class Rendered:
    """The tokenizer-independent view of one example: segments plus the images they refer to."""

    segments: list[Segment]
    images: list[Any]
    system: str | None
    leading_images: list[Any] = field(default_factory=list)  # before ``images`` (ms-swift XComposer2 inline)

    def text(self, tokenizer: Any = None) -> str:
        """Segments joined; id segments as ``⟦ids⟧`` and image slots as ``⟦image N⟧``. With ``tokenizer`` the ids
        are named (CogVLM: ``⟦1⟧Question: Hi Answer:Hello.⟦2⟧`` -> ``⟦<s>⟧Question: Hi Answer:Hello.⟦</s>⟧``)."""
        return "".join(_segment_text(s, tokenizer) for s in self.segments)

    def mask_view(self, tokenizer: Any = None) -> str:
        """Like ``text()`` but with supervised segments wrapped in ``[[...]]``."""
        return "".join(f"[[{_segment_text(s, tokenizer)}]]" if s.loss else _segment_text(s, tokenizer)
                       for s in self.segments)


def _segment_text(seg: Segment, tokenizer: Any = None) -> str:
    if isinstance(seg.value, str):
        return seg.value
    if isinstance(seg.value, ImageSlot):
        return f"⟦image {seg.value.index}⟧"
    return "⟦" + ",".join(_id_name(i, tokenizer) for i in seg.value) + "⟧"


def _id_name(token_id: int, tokenizer: Any) -> str:
    """``tokenizer``'s text for one id (``1`` -> ``<s>``); the id itself without a tokenizer, for a marker such as
    -200 or when the tokenizer has no such id."""
    if tokenizer is None or token_id < 0:
        return str(token_id)
    try:
        name = tokenizer.decode([token_id])
    except (IndexError, KeyError, OverflowError, TypeError, ValueError):
        return str(token_id)
    return name if isinstance(name, str) and name else str(token_id)


class Template:
    """A template bound to a tokenizer. ``encode(example)`` takes ms-swift's example dict.

    >>> tpl.encode({'query': 'Describe this image.', 'response': 'A cat.', 'images': ['cat.png']})  # doctest: +SKIP
    {'input_ids': [...], 'labels': [-100, ..., 330, 5255, 28723, 2], 'image_spans': [[4, 2144]], ...}

    ``model_side_media=True`` (``sft`` and ``infer`` pass it) makes a profile whose ids leave one marker per image for
    the model (``meta.model_media``: swift-2.2.0 llava and yi-vl) give the ids vlmref's models run: each marker is
    expanded after the swift encode and its cut by the official media step (see ``media.ModelSideMedia``), which
    gets ``media_options`` updated with ``model_media_options`` (``image_token_id``: the model config's image id).
    Other templates and profiles ignore it; without it the swift ids stay ms-swift's exact ones::

        swift-2.2.0                          1 733 16289 28793 28705 32000 28705 13 22836 ...
        swift-2.2.0, model_side_media=True   1 733 16289 28793 28705 [32000 * 2340] 28705 13 22836 ...
    """

    def __init__(
        self,
        meta: TemplateMeta,
        tokenizer: Any,
        default_system: str | None = None,
        max_length: int | None = None,
        truncation_strategy: TruncationStrategy = "delete",
        media_root: str | None = None,
        max_length_counts_images: bool = True,
        model_side_media: bool = False,
        model_media_options: dict[str, Any] | None = None,
        **media_options: Any,
    ) -> None:
        if truncation_strategy == "ignore":  # ms-swift alias
            truncation_strategy = "delete"
        if truncation_strategy not in ("delete", "truncation_left"):
            raise ValueError(f"truncation_strategy must be 'delete' or 'truncation_left', got {truncation_strategy!r}")
        self.meta = meta
        self.template_type = meta.template_type
        self.profile = meta.profile
        self.tokenizer = tokenizer
        system = meta.default_system
        if default_system is not None:
            if default_system and not meta.supports_system:
                raise TemplateInputError(meta.template_type, "default_system", "this template has no system prompt")
            system = default_system or None
        self.default_system = system
        self.max_length = max_length if max_length is None or max_length > 0 else None
        # False = ms-swift 2.2.0's budget: max_length bounds the text; image positions come on top of it
        self.max_length_counts_images = max_length_counts_images
        self.truncation_strategy = truncation_strategy
        self.media_root = media_root
        self.media = get_media_step(meta.media)(meta, tokenizer, media_root=media_root, **media_options)
        self.model_media = None  # the step that expands the markers a swift-2.2.0 encode leaves for the model
        if model_side_media and meta.model_media is not None:
            options = {**media_options, **(model_media_options or {})}
            self.model_media = ModelSideMedia(meta, tokenizer, media_root=media_root, **options)
        self._media_tags = (IMAGE_TAG, *meta.split_tags)
        self._tag_splitter = re.compile("(" + "|".join(map(re.escape, self._media_tags)) + ")")

    # ---- public API -------------------------------------------------------------------------------------------
    @property
    def suffix(self) -> list[Element]:
        return list(self.meta.suffix)

    @property
    def stop_words(self) -> list[str]:
        return list(self.meta.stop_words)

    def render(self, example: dict[str, Any]) -> Rendered:
        """Build the merged segment list for ``example`` (no tokenizer ids except literal id elements)."""
        query, response, history, images, system, leading = self._prepare(example)
        contexts: list[tuple[Element | ImageSlot, bool]] = []
        prefix = self.meta.prefix if system is None else self.meta.system_prefix
        assert prefix is not None
        self._extend(contexts, prefix, system=system)
        rounds = [*history, [query, response]]
        for i, (q, r) in enumerate(rounds):
            elements: list[Element] = list(self.meta.prompt)
            if i < len(rounds) - 1:
                elements.append("{{RESPONSE}}")
                if rounds[i + 1][0]:
                    elements += list(self.meta.chat_sep or ())
            elif r is not None:
                elements.append("{{RESPONSE}}")
                elements += list(self.meta.suffix)
            if q or r:
                self._extend(contexts, elements, query=q, response=r, round0=i)
        segments = self._split_images(contexts, images)
        return Rendered(segments=_merge(segments), images=images, system=system, leading_images=leading)

    def encode(self, example: dict[str, Any]) -> dict[str, Any]:
        """Encode ``example`` into ``input_ids``, ``labels`` (``None`` for a generation prompt) and family extras.

        Raises ``SequenceTooLongError`` under ``truncation_strategy='delete'`` when the final sequence (image tokens
        included) is longer than ``max_length``, and ``TemplateInputError`` for examples the template cannot take.
        """
        rendered = self.render(example)
        infer = example.get("response") is None
        ids: list[int] = []
        labels: list[int] = []
        slots: list[tuple[int, int]] = []  # (position, image index) of each image slot
        for seg in rendered.segments:
            if isinstance(seg.value, ImageSlot):
                slots.append((len(ids), seg.value.index))
                continue
            if isinstance(seg.value, str):
                piece = self._encode_text(seg)
            else:
                piece = list(seg.value)
            ids += piece
            labels += piece if seg.loss else [-100] * len(piece)
        images = [*rendered.leading_images, *rendered.images]
        ctx = MediaContext(input_ids=ids, labels=labels, slots=slots, images=images)
        if self.meta.truncate_before_media:  # ms-swift 2.2.0: the text ids are cut, then the model adds images
            encoded = self.media.expand(self._truncate_ids(ctx))
        else:
            encoded = self._truncate(self.media.expand(ctx))
        if self.model_media is not None:  # after the cut, as the model expanded them in ms-swift 2.2.0
            encoded = self.model_media.expand(encoded)
        out: dict[str, Any] = {"input_ids": encoded.input_ids, "labels": None if infer else encoded.labels}
        out["image_spans"] = [list(s) for s in encoded.spans]
        out["images"] = encoded.images
        out.update(encoded.extras)
        return out

    def check(self, example: dict[str, Any]) -> None:
        """Run every input check of ``encode`` that needs no tokenizer (fields, turns, image tags and counts)."""
        self._prepare(example)

    # ---- tokenization of text segments --------------------------------------------------------------------------
    def _encode_text(self, seg: Segment) -> list[int]:
        """Tokenize one text segment alone (``add_special_tokens=False``), as ms-swift does.

        Special-token strings that overlap caller text are tokenized as plain text, so ``<|im_end|>`` typed in a query
        cannot end a turn and ``<image>`` typed without an image cannot become an image placeholder.
        """
        text = seg.value
        assert isinstance(text, str)
        hits = []
        if seg.protected and self.meta.protect_caller_text:
            pattern = self._special_pattern()
            if pattern is not None:
                hits = [m.span() for m in pattern.finditer(text) if _overlaps(m.span(), seg.protected)]
        encode = self._plain_encoder()
        if not hits:
            return encode(text)
        ids: list[int] = []
        pos = 0
        for start, end in hits:
            if pos < start:
                ids += encode(text[pos:start])
            ids += self._encode_literal(text[start:end])
            pos = end
        if pos < len(text):
            ids += encode(text[pos:])
        return ids

    def _plain_encoder(self):
        """``text -> tokenizer.encode(text, add_special_tokens=False)``, through the fastest exact route: vlmref's
        own tokenizers' ``encode_plain``, an HF fast tokenizer's backend, else ``encode`` itself. Constant text
        (separators, suffixes, a default system turn) is cached per template."""
        if not hasattr(self, "_plain"):
            fn = getattr(self.tokenizer, "encode_plain", None)
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            if callable(fn):
                encode = fn
            elif backend is not None and callable(getattr(backend, "encode", None)):

                def encode(text: str) -> list[int]:
                    # transformers sets this flag on each call from split_special_tokens (False by default) and
                    # leaves it as the last call set it: _encode_literal's split_special_tokens=True call
                    if getattr(backend, "encode_special_tokens", False):
                        backend.encode_special_tokens = False
                    return backend.encode(text, add_special_tokens=False).ids

            else:
                encode = lambda text: list(self.tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
            cache: dict[str, list[int]] = {}

            def plain(text: str) -> list[int]:
                hit = cache.get(text)
                if hit is None:
                    hit = encode(text)
                    if len(cache) < _SEGMENT_CACHE:
                        cache[text] = hit
                return list(hit)

            self._plain = plain
        return self._plain

    def _encode_literal(self, text: str) -> list[int]:
        """Ids for ``text`` read as plain characters; halves it until no special-token id remains (SentencePiece
        user-defined pieces such as ``[UNUSED_TOKEN_146]`` match even with ``split_special_tokens``)."""
        try:
            ids = list(self.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))
        except TypeError:
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        if len(text) < 2 or not set(ids) & self._special_ids:
            return ids
        mid = len(text) // 2
        return self._encode_literal(text[:mid]) + self._encode_literal(text[mid:])

    def _special_pattern(self) -> re.Pattern | None:
        if not hasattr(self, "_special_re"):
            names = special_token_strings(self.tokenizer, self.meta) - set(self.meta.user_markup)
            self._special_ids = set()
            for name in names:
                token_id = _token_id(self.tokenizer, name)
                if token_id is not None:
                    self._special_ids.add(token_id)
            ordered = sorted(names, key=len, reverse=True)
            self._special_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        return self._special_re

    # ---- steps ------------------------------------------------------------------------------------------------
    def _prepare(self, example: dict[str, Any]) -> tuple[str, str | None, list[list[str]], list[Any], str | None, list]:
        t = self.template_type
        query = example.get("query")
        if query is None:
            query = ""
        if not isinstance(query, str):
            raise TemplateInputError(t, "query", f"expected a string, got {type(query).__name__}", "wrong_type",
                                     expected="a string", found=type(query).__name__)
        response = example.get("response")
        if response is not None and not isinstance(response, str):
            raise TemplateInputError(t, "response", f"expected a string or None, got {type(response).__name__}",
                                     "wrong_type", expected="a string or None", found=type(response).__name__)
        history = example.get("history") or []
        for i, turn in enumerate(history):
            if not isinstance(turn, (list, tuple)) or len(turn) != 2 or not all(isinstance(x, str) for x in turn):
                raise TemplateInputError(t, "history", f"turn {i} must be a [query, response] pair of strings", "wrong_type")
        history = [list(turn) for turn in history]
        if history and not self.meta.supports_multi_round:
            raise TemplateInputError(t, "history", "this template supports a single round only", "multi_turn")
        images = example.get("images") or []
        if not isinstance(images, (list, tuple)):
            images = [images]  # ms-swift wraps a bare image; unlike ms-swift, the caller's dict is not mutated
        images = list(images)
        query, history, images, leading = self.media.collect_inline_images(query, history, images)
        query, history, images = self._add_default_tags(query, history, images)
        self._check_images(images)
        system = example.get("system")
        if system is None:
            system = self.default_system
        elif system == "":
            system = None
        elif not self.meta.supports_system:
            raise TemplateInputError(t, "system", "this template does not support a system prompt (pass '' or None)", "system_unsupported")
        self._check_media_tags_in_replies(response, history, system, bool(images))
        return query, response, history, images, system, leading

    def _add_default_tags(self, query: str, history: list[list[str]], images: list[Any]):
        """Place ``<image>`` tags the way ms-swift 2.2.0 does ('round': one entry per turn; else all in round 1)."""
        t = self.template_type
        if not any(images):
            return query, history, []
        user_text = "\n".join([h[0] for h in history] + [query])
        if IMAGE_TAG in user_text:
            images = [m for m in images if m]
            n_tags = user_text.count(IMAGE_TAG)
            if n_tags != len(images):
                raise TemplateInputError(t, "images", f"{n_tags} {IMAGE_TAG} tag(s) in the user turns but {len(images)} image(s)", "tag_count")
            return query, history, images
        if self.meta.infer_media_type == "round":
            if len(images) != len(history) + 1:
                expected = (f"one entry per turn in 'images' ({len(history) + 1}: history + query; None for a turn "
                            "without an image), or <image> tags in the text")
                raise TemplateInputError(t, "images", f"expected {expected}; got {len(images)}", "images_per_turn",
                                         expected=expected, found=f"{len(images)} entries")
            for turn, image in zip(history, images, strict=False):
                if image:
                    turn[0] = IMAGE_TAG + turn[0]
            if images[-1]:
                query = IMAGE_TAG + query
            return query, history, [m for m in images if m]
        images = [m for m in images if m]
        tags = IMAGE_TAG * len(images)
        if history:
            history[0][0] = tags + history[0][0]
        else:
            query = tags + query
        return query, history, images

    def _check_media_tags_in_replies(self, response, history, system, has_images: bool) -> None:
        """Image tags belong to user turns. ms-swift splits them anywhere, so a literal ``<image>`` in a reply
        crashes or misplaces images, and Qwen-VL's tokenizer turns ``<img>..</img>`` in a reply into a supervised
        image; vlmref refuses both, naming the field."""
        tags = [IMAGE_TAG] if has_images else []
        if self.media.tokenizer_expands_markup and self.meta.reply_markup_check:
            tags.append(self.media.markup_tokens[0])
        places = [("response", response), ("system", system)]
        places += [(f"history[{i}] response", r) for i, (_, r) in enumerate(history)]
        for field_name, text in places:
            for tag in tags:
                if text and tag in text:
                    raise TemplateInputError(self.template_type, field_name, f"{tag} is only allowed in user turns", "tag_in_reply")

    def _check_images(self, images: list[Any]) -> None:
        t = self.template_type
        if self.meta.max_images is not None and len(images) > self.meta.max_images:
            raise TemplateInputError(t, "images", f"at most {self.meta.max_images} image(s) per sample, got {len(images)}", "image_count")
        if self.meta.image_paths_only:
            for i, image in enumerate(images):
                if not isinstance(image, str):
                    raise TemplateInputError(t, "images", f"image {i} must be a path or URL string, got {type(image).__name__}", "image_kind")

    def _extend(self, out: list, elements: Sequence[Element], *, query=None, response=None, system=None, round0=None):
        """Substitute placeholders and attach ms-swift's loss flag to each element.

        Entries are ``(value, loss, caller)``; ``caller`` marks text the caller supplied (query, response, system), whose
        special-token strings are later tokenized as plain text.
        """
        for element in elements:
            if element == "{{RESPONSE}}":
                out.append((response, True, True))
                continue
            if not isinstance(element, str):
                out.append((self._resolve_ids(element), element in self.meta.suffix, False))
                continue
            if round0 is not None:
                element = element.replace("{{ROUND0}}", str(round0)).replace("{{ROUND1}}", str(round0 + 1))
            pieces = _PLACEHOLDER_SPLITS.get(element)
            if pieces is None:
                pieces = _PLACEHOLDER_SPLITS.setdefault(element, tuple(_PLACEHOLDER_RE.split(element)))
            if len(pieces) == 1:  # no {{SYSTEM}} / {{QUERY}}: constant text
                if element:
                    out.append((element, element in self.meta.suffix, False))
                continue
            values = {"{{SYSTEM}}": system, "{{QUERY}}": query}
            parts = [(values[p], True) if values.get(p) is not None else (p, False) for p in pieces]
            loss = "".join(p for p, _ in parts) in self.meta.suffix
            out.extend((p, loss, caller) for p, caller in parts if p)

    def _resolve_ids(self, element: tuple) -> tuple[int, ...]:
        ids = []
        for item in element:
            if isinstance(item, str):
                value = getattr(self.tokenizer, item, None)
                if value is None:
                    raise TemplateInputError(self.template_type, "tokenizer", f"tokenizer has no {item}")
                ids.append(int(value))
            else:
                ids.append(int(item))
        return tuple(ids)

    def _split_images(self, contexts: list, images: list[Any]) -> list[Segment]:
        """Split text on ``<image>`` (only when the sample has images, as ms-swift does) and insert placeholders.

        With images, empty text is dropped here, an empty response included, as ms-swift's ``split_special_tokens``
        does: the unsupervised text on both sides of an empty reply then merges into one segment."""
        out: list[Segment] = []
        index = 0
        for value, loss, caller in contexts:
            if images and value == "":
                continue
            if not images or not isinstance(value, str) or not any(tag in value for tag in self._media_tags):
                out.append(_segment(value, loss, caller))
                continue
            for part in self._tag_splitter.split(value):
                if not part:
                    continue
                if part != IMAGE_TAG:
                    out.append(_segment(part, loss, caller))
                    continue
                for element in self.meta.image_placeholder:
                    if isinstance(element, ImageSlot):
                        out.append(Segment(ImageSlot(index), False))
                    elif isinstance(element, str):
                        out.append(Segment(element.replace("{{PATH}}", str(images[index])), loss))
                    else:
                        out.append(Segment(self._resolve_ids(element), loss))
                index += 1
        return out

    def _truncate_ids(self, ctx: MediaContext) -> MediaContext:
        """ms-swift 2.2.0's cut (``Template._encode``): ``delete`` refuses a sample over ``max_length`` (swift returns
        ``{}``); otherwise the last ``max_length`` ids are kept, before any image expansion."""
        if self.max_length is None:
            return ctx
        if self.truncation_strategy == "delete" and len(ctx.input_ids) > self.max_length:
            raise SequenceTooLongError(self.template_type, len(ctx.input_ids), self.max_length, 0)
        start = max(0, len(ctx.input_ids) - self.max_length)
        slots = [(pos - start, i) for pos, i in ctx.slots if pos >= start]
        return MediaContext(ctx.input_ids[start:], ctx.labels[start:], slots=slots, images=ctx.images)

    def _truncate(self, enc):
        if self.max_length is None:
            return enc
        limit = self.max_length if self.max_length_counts_images else self.max_length + enc.image_token_count()
        if len(enc.input_ids) <= limit:
            return enc
        if self.truncation_strategy == "delete":
            raise SequenceTooLongError(self.template_type, len(enc.input_ids), limit, enc.image_token_count())
        return enc.truncate_left(limit, self.template_type, self.meta.max_images)


def _overlaps(span: tuple[int, int], ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(span[0] < b and a < span[1] for a, b in ranges)


def _token_id(tokenizer: Any, token: str) -> int | None:
    try:
        token_id = tokenizer.convert_tokens_to_ids(token)
    except (KeyError, ValueError, TypeError):
        return None
    if token_id is None or (token_id == getattr(tokenizer, "unk_token_id", None) and token != getattr(tokenizer, "unk_token", None)):
        return None
    return int(token_id)


def special_token_strings(tokenizer: Any, meta: TemplateMeta) -> set[str]:
    """Strings the tokenizer maps to one special id: its added/special tokens and the template's own markers.

    >>> sorted(special_token_strings(tok, TEMPLATES.get('qwen')))[:3]  # doctest: +SKIP
    ['<|endoftext|>', '<|extra_0|>', '<|extra_100|>']
    """
    names: set[str] = set()
    for attr in ("added_tokens_encoder", "special_tokens", "specials"):  # HF added tokens, Qwen tiktoken, TinyTokenizer
        table = getattr(tokenizer, attr, None)
        if isinstance(table, dict):
            names |= {k for k in table if isinstance(k, str) and k}
    names |= {t for t in (getattr(tokenizer, "all_special_tokens", None) or []) if isinstance(t, str) and t}
    names |= {m for m in template_markers(meta) if _token_id(tokenizer, m) is not None}
    return names


def _segment(value: Any, loss: bool, caller: bool) -> Segment:
    protected = ((0, len(value)),) if caller and isinstance(value, str) and value else ()
    return Segment(value, loss, protected)


def _merge(segments: list[Segment]) -> list[Segment]:
    """Concatenate runs of unsupervised text (ms-swift ``_simplify_context_list``); drop empty text."""
    out: list[Segment] = []
    texts: list[str] = []
    ranges: list[tuple[int, int]] = []
    size = 0
    for seg in segments:
        value = seg.value
        if value.__class__ is str and not seg.loss:
            if seg.protected:
                ranges.extend((a + size, b + size) for a, b in seg.protected)
            texts.append(value)
            size += len(value)
            continue
        if size:
            out.append(Segment("".join(texts), False, tuple(ranges)))
        texts.clear()
        ranges.clear()
        size = 0
        out.append(seg)
    if size:
        out.append(Segment("".join(texts), False, tuple(ranges)))
    return out


def get_template(
    template_type: str,
    tokenizer: Any,
    default_system: str | None = None,
    max_length: int | None = None,
    truncation_strategy: TruncationStrategy = "delete",
    *,
    profile: str = DEFAULT_PROFILE,
    **kwargs: Any,
) -> Template:
    """ms-swift's ``get_template``: a fresh ``Template`` for ``template_type`` bound to ``tokenizer``.

    ``profile='official'`` (the default) is vlmref's corrected behaviour, each difference from ms-swift recorded in
    ``meta.deviations``; ``profile='swift-2.2.0'`` gives ms-swift 2.2.0's exact ``input_ids`` and ``labels``, its
    quirks listed in ``meta.quirks``, and a named error where ms-swift crashes or returns ``{}``.
    """
    meta = get_template_meta(template_type, profile)
    return Template(meta, tokenizer, default_system, max_length, truncation_strategy, **kwargs)
