"""One ``--max_length`` rule, stated the same way by ``vlmref sft`` and ``vlmref check-data``.

By default ``max_length`` counts text tokens only (ms-swift 2.2.0's budget: image positions come on top), so a
640x480 LLaVA-NeXT row (2340 image positions) trains at ``--max_length 2048``. ``--max_length_counts_images true``
bounds the whole sequence instead. A row over the limit under ``truncation_strategy='delete'`` is reported as::

    data.jsonl:4: field '<encoded>': expected at most 2048 text tokens: max_length 2048 counts text tokens only
    (ms-swift's budget; image positions come on top); found this row has 2119 text tokens (and 2340 image positions)

``too_long_row_error(row_error, err, counts_images)`` rewrites the dataset layer's row error (its file, line and row)
from the template's ``SequenceTooLongError``; ``budget_rule(max_length, counts_images)`` is the rule alone.
"""

from __future__ import annotations

from ..errors import DatasetRowError, SequenceTooLongError


def budget_rule(max_length: int, counts_images: bool) -> str:
    """``'max_length 2048 counts text tokens only (ms-swift's budget; image positions come on top)'``."""
    if counts_images:
        return (f"max_length {max_length} counts every position, image positions included "
                "(--max_length_counts_images true)")
    return f"max_length {max_length} counts text tokens only (ms-swift's budget; image positions come on top)"


def too_long_row_error(row: DatasetRowError, err: SequenceTooLongError, counts_images: bool) -> DatasetRowError:
    """The row error for ``err``, quoting the ``max_length`` the user gave (not the limit with image positions added).

    The template raises with ``max_length`` = the limit it compared against: under ms-swift's budget that is the
    user's value plus the row's image positions, so the user's value and the text count are recovered here.
    """
    images = err.image_tokens
    if counts_images:
        user_max = err.max_length
        expected = f"at most {user_max} positions: {budget_rule(user_max, True)}"
        found = f"this row has {err.length} positions, {images} of them image positions"
    else:
        user_max = err.max_length - images
        text = err.length - images
        expected = f"at most {user_max} text tokens: {budget_rule(user_max, False)}"
        found = f"this row has {text} text tokens" + (f" (and {images} image positions)" if images else "")
    return DatasetRowError(row.source, row.line, "<encoded>", expected, found, "too_long", row=getattr(row, "row", None))
