"""Typed errors. Each names what was wrong and what was expected, so a row-level report can quote it."""

from __future__ import annotations


class VlmrefError(Exception):
    """Base class of every error vlmref raises on purpose."""


class TemplateInputError(VlmrefError, ValueError):
    """A sample cannot be encoded by a template (e.g. a system prompt for a template without one).

    ``field`` names the offending field of the example (``system``, ``images``, ``history``, ...); ``reason`` is a
    short code a dataset report counts by (``wrong_type``, ``multi_turn``, ``system_unsupported``, ``tag_count``,
    ``images_per_turn``, ``tag_in_reply``, ``image_count``, ``image_kind``, ...).
    """

    def __init__(self, template_type: str, field: str, message: str, reason: str = "template_input", *,
                 expected: str | None = None, found: str | None = None) -> None:
        self.template_type = template_type
        self.field = field
        self.reason = reason
        self.expected = expected  # with ``found``: what a row report quotes ("expected ...; found ...")
        self.found = found
        super().__init__(f"[{template_type}] field {field!r}: {message}")


class SequenceTooLongError(VlmrefError, ValueError):
    """An encoded sample is longer than ``max_length`` under ``truncation_strategy='delete'``.

    ms-swift 2.2.0 silently returns ``{}`` here; vlmref raises so that the dataset layer can report the row.
    """

    def __init__(self, template_type: str, length: int, max_length: int, image_tokens: int) -> None:
        self.template_type = template_type
        self.length = length
        self.max_length = max_length
        self.image_tokens = image_tokens
        super().__init__(
            f"[{template_type}] encoded length {length} (of which {image_tokens} image tokens) exceeds "
            f"max_length={max_length} with truncation_strategy='delete'"
        )


class ImageLoadError(VlmrefError, ValueError):
    """An image reference could not be turned into a usable image.

    ``reason`` is a short code the dataset report counts by: ``missing``, ``corrupt``, ``unreachable``,
    ``timeout``, ``too_large`` (bytes), ``too_many_pixels`` (decompression-bomb guard), ``invalid_base64``,
    ``unsupported`` (a reference of a kind the caller cannot take).
    """

    def __init__(self, ref: str, reason: str, message: str) -> None:
        self.ref = ref
        self.reason = reason
        super().__init__(f"image {ref}: {message}")


class DatasetError(VlmrefError, ValueError):
    """A dataset as a whole cannot be read (unsupported file type, unreadable file, unknown name, offline hub)."""


class DatasetRowError(VlmrefError, ValueError):
    """One dataset row is invalid. The message names file, line, field, what was expected and what was found::

        data/train.jsonl:7: field 'images': expected exactly 1 image per conversation (cogvlm-17b-instruct); found 2

    Rows of a named dataset have no line; ``row`` (0-based, in the dataset's own order) names them instead::

        coco-en-mini row 17: field 'caption': expected a string; found None
    """

    def __init__(
        self, source: str, line: int | None, field: str, expected: str, found: str, reason: str = "invalid",
        row: int | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.row = row
        self.field = field
        self.expected = expected
        self.found = found
        self.reason = reason
        where = f"{source}:{line}" if line is not None else f"{source} row {row}" if row is not None else source
        super().__init__(f"{where}: field {field!r}: expected {expected}; found {found}")


class TokenizerNotFoundError(VlmrefError, FileNotFoundError):
    """A model's tokenizer files are not where they were looked for; the message says where they come from and how
    to pass them (``tokenizer_id_or_path=`` / ``--tokenizer_id_or_path``)."""
