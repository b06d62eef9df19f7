"""Per-model row rules (from the model registry) and the checks a row must pass before training.

``RowChecker(model_type).check(sample)`` raises ``DatasetRowError`` for the first rule the sample breaks::

    RowChecker('cogvlm-17b-instruct').check(Sample('hi', 'ok'))
    DatasetRowError: data.jsonl:3: field 'images': expected exactly 1 image per conversation (cogvlm-17b-instruct:
    exactly one image per conversation, in any turn; it is placed after BOS); found 0

Checks, in order: the model's image/turn rules (``DatasetRules``), the template's own input checks (tags, one entry per
turn, system support), optionally every image (readable, within the size and pixel limits), and with a tokenizer and
``max_length`` the encoded length under ``truncation_strategy='delete'``.
"""

from __future__ import annotations

from typing import Any

from ..errors import DatasetRowError, ImageLoadError, SequenceTooLongError, TemplateInputError
from ..models.model_types import get_model_meta
from ..templates import get_template
from .formats import IMAGE_TAG, show
from .reasons import image_reason
from .sample import RowOrigin, Sample


def row_error(origin: RowOrigin | None, field: str, expected: str, found: str, reason: str) -> DatasetRowError:
    """A ``DatasetRowError`` at ``origin``: file and line, or a named dataset and its row index."""
    if origin is None:
        return DatasetRowError("<sample>", None, field, expected, found, reason)
    row = origin.index if origin.line is None else None
    return DatasetRowError(origin.source, origin.line, field, expected, found, reason, row=row)


def template_row_error(err: TemplateInputError, origin: RowOrigin | None) -> DatasetRowError:
    """A template's refusal as a row error with the same field and reason code, e.g.::

        d.jsonl:3: field 'images': expected one 'images' entry per turn (2: history + query); found 3 entries
    """
    if err.expected is not None and err.found is not None:
        return row_error(origin, err.field, err.expected, err.found, err.reason)
    return row_error(origin, err.field, f"input the {err.template_type} template accepts", str(err).split(": ", 1)[-1],
                     err.reason)



class RowChecker:
    """Validate samples for one model type; ``template`` (bound to a real tokenizer) enables the length check."""

    def __init__(
        self,
        model_type: str,
        *,
        template: Any = None,
        check_images: bool = False,
        image_options: Any = None,
    ) -> None:
        self.meta = get_model_meta(model_type)
        self.model_type = self.meta.model_type
        self.rules = self.meta.rules
        self.template = template
        # a tokenizer-free template for the input checks (they never touch the tokenizer)
        self.check_template = template or get_template(self.meta.template, None)
        self.round_images = self.check_template.meta.infer_media_type == "round"
        self.check_images = check_images
        self.image_options = image_options

    @property
    def inline_images(self) -> bool:
        """Whether ``<img>path</img>`` in user turns is this model's documented image syntax."""
        return self.check_template.media.inline_image_syntax

    def check(self, sample: Sample) -> None:
        self._check_rules(sample)
        self._check_template(sample)
        if self.check_template.meta.image_paths_only:
            self._check_path_refs(sample)
        if self.check_images:
            self._check_image_files(sample)
        if self.template is not None and self.template.max_length is not None:
            self._check_length(sample)

    # ---- rules ------------------------------------------------------------------------------------------------------
    def _error(self, sample: Sample, field: str, expected: str, found: str, reason: str) -> DatasetRowError:
        return row_error(sample.origin, field, expected, found, reason)

    def _check_rules(self, sample: Sample) -> None:
        rules, n = self.rules, sample.n_images
        what = f"({self.model_type}: {rules.note})"
        if not rules.multi_turn and sample.history:
            raise self._error(sample, "history", f"a single turn {what}", f"{len(sample.history)} earlier turn(s)", "multi_turn")
        if rules.max_images is not None and rules.max_images == rules.min_images and n != rules.min_images:
            raise self._error(sample, "images", f"exactly {rules.min_images} image(s) per conversation {what}", str(n), "image_count")
        if n < rules.min_images:
            raise self._error(sample, "images", f"at least {rules.min_images} image(s) {what}", str(n), "image_count")
        if rules.max_images is not None and n > rules.max_images:
            raise self._error(sample, "images", f"at most {rules.max_images} image(s) {what}", str(n), "image_count")
        if rules.max_images_per_turn is not None:
            for turn, count in enumerate(self._images_per_turn(sample)):
                if count > rules.max_images_per_turn:
                    field = "query" if turn == len(sample.history) else f"history[{turn}]"
                    raise self._error(sample, field, f"at most {rules.max_images_per_turn} image(s) in one turn {what}",
                                      f"{count} in turn {turn}", "images_per_turn")

    def _images_per_turn(self, sample: Sample) -> list[int]:
        """Images each user turn gets: its ``<image>`` tags; else one entry per turn ('round') or all in the first."""
        texts = [q for q, _ in sample.history] + [sample.query]
        if any(IMAGE_TAG in t for t in texts):
            return [t.count(IMAGE_TAG) for t in texts]
        if self.round_images:  # one entry per turn; a wrong entry count is the template check's to report
            return [0 if m is None else 1 for m in sample.images] if len(sample.images) == len(texts) else []
        return [sample.n_images] + [0] * (len(texts) - 1)

    def _check_template(self, sample: Sample) -> None:
        try:
            self.check_template.check(sample.to_example())
        except TemplateInputError as e:
            raise template_row_error(e, sample.origin) from None

    def _check_path_refs(self, sample: Sample) -> None:
        """The model loads images by path or URL itself (Qwen-VL); the reference must fit its media step's byte limit."""
        from .images import classify_image_ref

        step = self.check_template.media
        limit, expected = step.image_ref_max_bytes, step.image_ref_expected
        for i, ref in enumerate(sample.images):
            if ref is None:
                continue
            size = len(ref.encode("utf-8")) if isinstance(ref, str) else 0
            kind = classify_image_ref(ref) if isinstance(ref, str) else type(ref).__name__
            if limit is not None and size > limit:
                raise self._error(sample, f"images[{i}]", expected, f"{size} bytes: {show(ref, 40)}",
                                  "path_too_long")
            if kind not in ("path", "url"):
                raise self._error(sample, f"images[{i}]", expected or "a local path or http(s) URL",
                                  f"{kind.replace('_', ' ')} {show(ref, 40)}" if isinstance(ref, str) else kind,
                                  "image_kind")

    def _check_image_files(self, sample: Sample) -> None:
        from .images import image_size

        for i, ref in enumerate(sample.images):
            if ref is None:
                continue
            try:
                image_size(ref, options=self.image_options)
            except ImageLoadError as e:
                raise self._error(sample, f"images[{i}]", "a readable image", str(e), image_reason(e.reason)) from None

    def _check_length(self, sample: Sample) -> None:
        try:
            self.template.encode(sample.to_example())
        except SequenceTooLongError as e:
            if self.template.truncation_strategy != "delete":
                raise
            raise self._error(sample, "<encoded>", f"at most max_length={e.max_length} tokens (truncation_strategy=delete)",
                              f"{e.length} tokens, {e.image_tokens} of them image positions", "too_long") from None
        except TemplateInputError as e:
            raise template_row_error(e, sample.origin) from None
