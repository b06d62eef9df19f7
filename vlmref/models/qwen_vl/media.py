"""Qwen-VL's media step: images are ``<img>PATH</img>`` text that the Qwen-VL tokenizer turns into 258 ids.

>>> QwenVLMedia.tokens_per_image(480, 640, {})
258
"""

from __future__ import annotations

from ...errors import TemplateInputError
from ...templates.inline_images import user_turn_fields
from ...templates.media import MediaContext, MediaStep, inline_images_or_error

QWEN_VL_PATH_BYTES = 256  # the Qwen-VL tokenizer's IMG_TOKEN_SPAN: an image reference fills 256 byte ids


QWEN_VL_IMAGE_POSITIONS = 2 + 256  # <img> + 256 resampler queries (the path bytes' positions) + </img>
QWEN_VL_PATH_EXPECTED = (f"a local path or http(s) URL of at most {QWEN_VL_PATH_BYTES} UTF-8 bytes (Qwen-VL reads "
                         "images by path; the reference fills its 256-byte <img> span)")


def _check_path_bytes(path: str, template_type: str, field_name: str) -> None:
    size = len(path.encode("utf-8"))
    if size > QWEN_VL_PATH_BYTES:
        found = f"{size} bytes: {path[:37] + '...' if len(path) > 40 else path!r}"
        raise TemplateInputError(template_type, field_name, f"expected {QWEN_VL_PATH_EXPECTED}; found {found}",
                                 "path_too_long", expected=QWEN_VL_PATH_EXPECTED, found=found)



class QwenVLMedia(MediaStep):
    """Images are ``<img>PATH</img>`` text; the Qwen-VL tokenizer makes them 258 ids. Spans are read from the ids.

    Inline markup is checked before tokenizing (``inline_markup_error``), and every path must fit the 256-byte span,
    so a malformed row is a ``TemplateInputError`` (``image_markup`` / ``path_too_long``), not the tokenizer's bare
    ``ValueError``."""

    span_frame = (1, 1)  # a span is <img> + 256 path-byte / <imgpad> positions + </img>
    inline_image_syntax = True
    tokenizer_expands_markup = True
    markup_tokens = ("<img>", "</img>", "<imgpad>")
    image_ref_max_bytes = QWEN_VL_PATH_BYTES
    image_ref_expected = QWEN_VL_PATH_EXPECTED

    @classmethod
    def tokens_per_image(cls, height, width, options, n_images=1):
        return QWEN_VL_IMAGE_POSITIONS

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
