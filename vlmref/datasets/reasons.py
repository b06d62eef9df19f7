"""The one vocabulary of row-error reason codes: ``check-data``, ``load_dataset`` and ``sft`` name a problem alike.

Each ``DatasetRowError.reason`` (and each ``TemplateInputError.reason`` a row can raise) is a key of ``REASONS``; the
report counts rows by it::

    invalid by reason: image_count 2, image_markup 1, image_missing 1

An image that cannot be read is ``image_<ImageLoadError.reason>`` whether ``check-data`` opened it up front or a
template met it while encoding (``image_reason('missing') -> 'image_missing'``).
"""

from __future__ import annotations

IMAGE_LOAD_REASONS = ("missing", "corrupt", "unreachable", "timeout", "too_large", "too_many_pixels",
                      "invalid_base64", "unsupported")

REASONS: dict[str, str] = {
    # reading and parsing a row
    "invalid_json": "the line or file is not valid JSON",
    "not_an_object": "the row is not a JSON object",
    "unknown_format": "no query/response, conversations or messages field",
    "ambiguous_format": "fields of several row formats at once",
    "wrong_type": "a field holds a value of the wrong type",
    "bad_role": "a turn's role is unknown or out of order",
    "missing_response": "no assistant reply to train on",
    "empty_response": "the assistant reply is empty",
    "near_miss_field": "a field named like 'images' (image, img, Images, ...) that no format reads",
    "inline_tags": "inline <img>path</img> for a model that reads images only from the 'images' field",
    "image_markup": "malformed inline <img>path</img> markup (unclosed, nested, empty or unopened)",
    "ambiguous_images": "images both inline and in the 'images' field",
    # the model's rules and the template's input checks
    "multi_turn": "history for a single-turn model",
    "image_count": "too few or too many images for the model",
    "images_per_turn": "too many images in one turn, or not one 'images' entry per turn",
    "tag_count": "the number of <image> tags differs from the number of images",
    "tag_in_reply": "an image tag in a reply or system prompt",
    "system_unsupported": "a system prompt for a template without one",
    "image_kind": "an image reference of a kind the model cannot take (e.g. base64 for Qwen-VL)",
    "path_too_long": "a Qwen-VL image path longer than its 256-byte <img> span",
    "swift_unsupported": "a sample ms-swift 2.2.0 cannot encode (template profile swift-2.2.0)",
    "template_input": "another input the template cannot take",
    # the images themselves and the encoded length
    **{f"image_{r}": f"an image that cannot be used ({r.replace('_', ' ')})" for r in IMAGE_LOAD_REASONS},
    "too_long": "longer than max_length under truncation_strategy=delete",
}


def image_reason(load_reason: str) -> str:
    """The row reason for an ``ImageLoadError`` reason: ``'missing' -> 'image_missing'``."""
    return f"image_{load_reason}"
