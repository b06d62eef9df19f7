"""InternLM-XComposer2 / 2.5 media steps: images at their slots as ``IMAGE_SENTINEL`` rows, ``im_mask`` 1 there.

>>> XComposer2Media.tokens_per_image(480, 640, {})
256
>>> XComposer2_5Media.tokens_per_image(480, 640, {})
2061
"""

from __future__ import annotations

from typing import Any

from ...errors import TemplateInputError
from ...templates.media import IMAGE_SENTINEL, MediaContext, MediaStep, image_hw, take_inline_images
from .image_tokens import xcomposer2_5_image_tokens

XCOMPOSER2_IMAGE_TOKENS = (224 // 14) ** 2  # internlm-xcomposer2-7b: img_size 224, 14-px patches


class XComposer2Media(MediaStep):
    """``<img>PATH</img>`` in user text become image slots (ms-swift's regex); ``im_mask`` marks image rows.
    Each image takes ``image_tokens`` positions (256: 224 px, 14-px patches)."""

    inline_image_syntax = True
    inline_images_exclusive = True

    @classmethod
    def tokens_per_image(cls, height, width, options, n_images=1):
        return int(options.get("image_tokens", XCOMPOSER2_IMAGE_TOKENS))

    def collect_inline_images(self, query, history, images):
        query, history, found = take_inline_images(query, history, "<image>", self.meta.template_type)
        if found and any(images):
            raise TemplateInputError(
                self.meta.template_type, "images", "inline <img> tags and an images column in one sample are ambiguous; use one"
            )
        return query, history, found or images, []

    def counts(self, ctx: MediaContext) -> list[int]:
        return [self.tokens_per_image(0, 0, self.options)] * len(ctx.slots)

    def expand(self, ctx: MediaContext) -> MediaContext:
        return self._repeat_slots(ctx, self.counts(ctx), IMAGE_SENTINEL, "im_mask")


class XComposer2_5Media(XComposer2Media):
    """XComposer2.5: each image takes its HD tiling count, with ``hd_num`` tiles at most (24 for one image in the
    sample, 6 for several; the ``hd_num`` media option overrides); the budget goes out as the ``hd_num`` extra."""

    @staticmethod
    def hd_num(options: dict[str, Any], n_images: int) -> int:
        return int(options.get("hd_num", 24 if n_images <= 1 else 6))

    @classmethod
    def tokens_per_image(cls, height, width, options, n_images=1):
        return xcomposer2_5_image_tokens(height, width, hd_num=cls.hd_num(options, n_images))

    def counts(self, ctx: MediaContext) -> list[int]:
        sizes = [image_hw(ctx.images[i], self.media_root, self.meta.template_type, i) for _, i in ctx.slots]
        return [self.tokens_per_image(h, w, self.options, len(ctx.images)) for h, w in sizes]

    def expand(self, ctx: MediaContext) -> MediaContext:
        out = super().expand(ctx)
        if ctx.slots:
            # the tiling budget each image was counted with; it stays right if truncation_left drops an image
            out.image_extras["hd_num"] = [self.hd_num(self.options, len(ctx.images))] * len(ctx.slots)
        return out



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
        query, history, found = take_inline_images(query, history, "</s>", self.meta.template_type)
        return query, history, images, found

    def expand(self, ctx: MediaContext) -> MediaContext:
        n = XComposer2Media.tokens_per_image(0, 0, self.options)
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
