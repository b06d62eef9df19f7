"""Typed errors. Each names what was wrong and what was expected, so a row-level report can quote it."""

from __future__ import annotations


class VlmrefError(Exception):
    """Base class of every error vlmref raises on purpose."""


class TemplateInputError(VlmrefError, ValueError):
    """A sample cannot be encoded by a template (e.g. a system prompt for a template without one).

    ``field`` names the offending field of the example (``system``, ``images``, ``history``, ...).
    """

    def __init__(self, template_type: str, field: str, message: str) -> None:
        self.template_type = template_type
        self.field = field
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
