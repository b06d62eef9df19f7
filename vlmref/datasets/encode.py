"""Pipeline stage 6: a checked ``Sample`` -> the template's encoding; every input, image or length error names the row.
"""

from __future__ import annotations

from typing import Any

from ..errors import ImageLoadError, SequenceTooLongError, TemplateInputError
from .reasons import image_reason
from .rules import RowChecker, row_error, template_row_error
from .sample import Sample


def encode_sample(template: Any, sample: Sample, checker: RowChecker | None = None) -> dict[str, Any]:
    """``template.encode(sample)``; any input, image or length error becomes a ``DatasetRowError`` naming the row.

    With ``checker`` the model's row rules are checked first: that is how ``check_dataset_strategy='none'`` finds a bad
    row (when it is first encoded, instead of before training).
    """
    origin = sample.origin
    if checker is not None:
        checker.check(sample)
    try:
        return template.encode(sample.to_example())
    except SequenceTooLongError as e:
        raise row_error(origin, "<encoded>", f"at most max_length={e.max_length} tokens (truncation_strategy=delete)",
                        f"{e.length} tokens, {e.image_tokens} of them image positions", "too_long") from e
    except TemplateInputError as e:
        raise template_row_error(e, origin) from e
    except ImageLoadError as e:
        raise row_error(origin, "images", "a readable image", str(e), image_reason(e.reason)) from e
