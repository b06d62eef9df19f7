"""The toy media step: each image slot becomes ``(28 // 14) ** 2 = 4`` ``IMAGE_SENTINEL`` (-200) positions.

>>> ToyMedia.tokens_per_image(480, 640, {})
4
"""

from __future__ import annotations

from vlmref.templates.media import IMAGE_SENTINEL, MediaContext, MediaStep

TOY_IMAGE_SIZE = 28
TOY_PATCH_SIZE = 14
TOY_IMAGE_TOKENS = (TOY_IMAGE_SIZE // TOY_PATCH_SIZE) ** 2


class ToyMedia(MediaStep):
    """Each slot becomes ``image_tokens`` (default 4) sentinel positions, whatever the image size."""

    @classmethod
    def tokens_per_image(cls, height, width, options, n_images=1):
        return int(options.get("image_tokens", TOY_IMAGE_TOKENS))

    def expand(self, ctx: MediaContext) -> MediaContext:
        n = self.tokens_per_image(0, 0, self.options)
        return self._repeat_slots(ctx, [n] * len(ctx.slots), IMAGE_SENTINEL, None)
