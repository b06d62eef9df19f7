"""Yi-VL's media step: each image slot becomes 1024 ``IMAGE_SENTINEL`` positions (448-px CLIP ViT-H/14, CLS dropped).

>>> YiVLMedia.tokens_per_image(480, 640, {})
1024
"""

from __future__ import annotations

from ...templates.media import IMAGE_SENTINEL, MediaContext, MediaStep

YI_VL_IMAGE_TOKENS = (448 // 14) ** 2


class YiVLMedia(MediaStep):
    """Each slot becomes ``image_tokens`` (default (448/14)^2 = 1024) sentinel positions."""

    @classmethod
    def tokens_per_image(cls, height, width, options, n_images=1):
        return int(options.get("image_tokens", YI_VL_IMAGE_TOKENS))

    def expand(self, ctx: MediaContext) -> MediaContext:
        n = self.tokens_per_image(0, 0, self.options)
        return self._repeat_slots(ctx, [n] * len(ctx.slots), IMAGE_SENTINEL, None)
