"""CogVLM's media steps: one image, its vision positions right after BOS, ``token_type_ids`` 1 there.

>>> CogVLMMedia.tokens_per_image(480, 640, {})
1227
"""

from __future__ import annotations

from ...errors import TemplateInputError
from ...templates.media import MediaContext, MediaStep

COGVLM_VISION_TOKENS = (490 // 14) ** 2 + 2  # EVA2-CLIP-E at 490 px, 14-px patches, plus boi and eoi


class CogVLMMedia(MediaStep):
    """One image: ``vision_tokens`` pad ids right after BOS (position 0), ``token_type_ids`` 1 on them."""

    images_outside_text = True
    image_required = "CogVLM needs exactly one image per conversation (build_conversation_input_ids)"

    @classmethod
    def tokens_per_image(cls, height, width, options, n_images=1):
        return int(options.get("vision_tokens", COGVLM_VISION_TOKENS))

    def expand(self, ctx: MediaContext) -> MediaContext:
        n_text = len(ctx.input_ids)
        if not ctx.images:
            return MediaContext(ctx.input_ids, ctx.labels, images=[], token_extras={"token_type_ids": [0] * n_text})
        n = self.tokens_per_image(0, 0, self.options)
        pad = self.tokenizer.pad_token_id
        ids = ctx.input_ids[:1] + [pad] * n + ctx.input_ids[1:]
        labels = ctx.labels[:1] + [-100] * n + ctx.labels[1:]
        ttype = [0] + [1] * n + [0] * (n_text - 1)
        return MediaContext(ids, labels, images=ctx.images, spans=[(1, n)], token_extras={"token_type_ids": ttype})



class SwiftCogVLMMedia(CogVLMMedia):
    """ms-swift 2.2.0 ``CogTemplate.encode``: the vision positions go after the first id of the cut sequence."""

    def expand(self, ctx: MediaContext) -> MediaContext:
        if not ctx.images:
            raise TemplateInputError(
                self.meta.template_type,
                "images",
                "ms-swift 2.2.0 cannot encode a CogVLM sample without an image (CogTemplate.encode passes an empty "
                "image to build_conversation_input_ids, which fails); use profile 'official'",
                "swift_unsupported",
            )
        return super().expand(ctx)
