"""LLaVA-NeXT's media step: each image slot becomes its anyres count of ``<image>`` ids, plus ``image_sizes``.

>>> LlavaNextMedia.tokens_per_image(480, 640, {})
2340
"""

from __future__ import annotations

from ...templates.media import MediaContext, MediaStep, image_hw, token_id_of
from .image_tokens import LLAVA_NEXT_GRID_PINPOINTS, llava_next_image_tokens


class LlavaNextMedia(MediaStep):
    """Each slot becomes the anyres count of ``<image>`` ids, as transformers' LlavaNext expects."""

    @classmethod
    def tokens_per_image(cls, height, width, options, n_images=1):
        return llava_next_image_tokens(height, width,
                                       pinpoints=options.get("image_grid_pinpoints", LLAVA_NEXT_GRID_PINPOINTS))

    def expand(self, ctx: MediaContext) -> MediaContext:
        image_id = self.options.get("image_token_id")  # the model config's image_token_index, when the caller has it
        if image_id is None:
            image_id = token_id_of(self.tokenizer, "<image>", self.meta.template_type)
        sizes = [image_hw(ctx.images[i], self.media_root, self.meta.template_type, i) for _, i in ctx.slots]
        counts = [self.tokens_per_image(h, w, self.options) for h, w in sizes]
        out = self._repeat_slots(ctx, counts, int(image_id), None)
        out.image_extras["image_sizes"] = [[h, w] for h, w in sizes]
        return out
