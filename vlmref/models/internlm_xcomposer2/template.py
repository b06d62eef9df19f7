"""InternLM-XComposer2 (7b) and 2.5 templates: InternLM2 chat markers, images spliced as embeddings.

One inline image, default system (ids: one ``<s>`` at the start, image rows marked by ``im_mask``)::

    <s>[UNUSED_TOKEN_146]system\\n{SYSTEM}[UNUSED_TOKEN_145]\\n[UNUSED_TOKEN_146]user\\n ⟦N image rows⟧
    Describe this image.[UNUSED_TOKEN_145]\\n[UNUSED_TOKEN_146]assistant\\n [[A cat.]][[[UNUSED_TOKEN_145]]]

N = 256 for internlm-xcomposer2-7b (CLIP ViT-L/14 at 224 px: the checkpoint's config.json has img_size 224; 1225
is internlm-xcomposer2-vl-7b at 490 px). For 2.5, N follows the HD tiling of the image (``image_tokens.py``).
"""

from ...templates.meta import (
    MEDIA_DEVIATIONS,
    TYPED_SPECIAL_TOKENS,
    ImageSlot,
    TemplateMeta,
    deviation,
    swift_variant,
)

XCOMPOSER2_SYSTEM = (
    "You are an AI assistant whose name is InternLM-XComposer (浦语·灵笔).\n"
    "- InternLM-XComposer (浦语·灵笔) is a conversational language model that is developed by "
    "Shanghai AI Laboratory (上海人工智能实验室). "
    "It is designed to be helpful, honest, and harmless.\n"
    "- InternLM-XComposer (浦语·灵笔) can understand and communicate fluently in the language chosen "
    "by the user such as English and 中文."
)

XCOMPOSER2_5_SYSTEM = (
    "You are an AI assistant whose name is InternLM-XComposer (浦语·灵笔).\n"
    "- InternLM-XComposer (浦语·灵笔) is a multi-modality conversational language model "
    "that is developed by Shanghai AI Laboratory (上海人工智能实验室). "
    "It is designed to be helpful, honest, and harmless.\n"
    "- InternLM-XComposer (浦语·灵笔) can understand and communicate fluently in the language chosen "
    "by the user such as English and 中文.\n"
    "- InternLM-XComposer (浦语·灵笔) is capable of comprehending and articulating responses effectively "
    "based on the provided image."
)

_BOS_DEVIATION = deviation(
    "xcomposer2-bos",
    "one <s> at the start only: ms-swift 2.2.0 drops the leading <s> and puts a <s> before every text part between "
    "images (text-only samples start <s><s>), turns inline <img>PATH</img> into '</s>' and splits at every </s> id; "
    "the official training path (modeling_internlm_xcomposer2.py interleav_wrap, need_bos) and IXC-2.5 chat tokenize "
    "only the first part with a BOS",
    media="swift_xcomposer2",
)
_COLUMN_DEVIATION = deviation(
    "xcomposer2-images-column",
    "an images column without inline <img> tags puts the images at the start of the first query; ms-swift 2.2.0 "
    "leaves a literal '<image>' text and appends the image after the final [UNUSED_TOKEN_145]",
    image_placeholder=("<image>",),
)
_DEVIATIONS = (TYPED_SPECIAL_TOKENS, _BOS_DEVIATION, _COLUMN_DEVIATION, *MEDIA_DEVIATIONS)

_COMMON = dict(
    prefix=("<s>",),
    prompt=("[UNUSED_TOKEN_146]user\n{{QUERY}}[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n",),
    chat_sep=("[UNUSED_TOKEN_145]\n",),
    suffix=("[UNUSED_TOKEN_145]",),
    system_prefix=("<s>[UNUSED_TOKEN_146]system\n{{SYSTEM}}[UNUSED_TOKEN_145]\n",),
    image_placeholder=(ImageSlot(0),),
    lazy_tokenize=True,
    stop_words=("[UNUSED_TOKEN_145]",),
)

XCOMPOSER2 = TemplateMeta(
    template_type="internlm-xcomposer2",
    default_system=XCOMPOSER2_SYSTEM,
    media="xcomposer2",
    source="ms-swift 2.2.0 template.py L1132-1241 (InternLMXComposer2)",
    deviations=(
        *_DEVIATIONS,
        deviation("xcomposer2-224px", "256 image positions (224 px), not 1225 (spec 2.3 assumed 490 px); the same "
                  "in ms-swift 2.2.0, whose count comes from the model"),
    ),
    **_COMMON,
)

XCOMPOSER2_5 = TemplateMeta(
    template_type="internlm-xcomposer2_5",
    default_system=XCOMPOSER2_5_SYSTEM,
    media="xcomposer2_5",
    source="ms-swift 2.2.1 template.py L1306-1325 (is_v2_5); absent from 2.2.0",
    deviations=_DEVIATIONS,
    **_COMMON,
)


SWIFT_XCOMPOSER2 = swift_variant(XCOMPOSER2)
# internlm-xcomposer2_5 is absent from ms-swift 2.2.0 (added in 2.2.1): that profile has no template for it.
