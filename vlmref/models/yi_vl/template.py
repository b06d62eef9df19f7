"""Yi-VL template (Yi tokenizer, no BOS, ``### Human`` / ``### Assistant`` turns).

One image, default system::

    {SYSTEM}\\n\\n### Human: ⟦1024 image positions⟧\\nDescribe this image.\\n### Assistant:[[A cat.]][[\\n###]]
"""

from ...templates.meta import (
    MEDIA_DEVIATIONS,
    TYPED_SPECIAL_TOKENS,
    YI_FAST_TOKENIZER_PREFIX,
    ImageSlot,
    TemplateMeta,
    deviation,
    swift_variant,
)

YI_VL_SYSTEM = (
    "This is a chat between an inquisitive human and an AI assistant. Assume the role of the AI assistant. "
    "Read all the images carefully, and respond to the human's questions with informative, "
    "helpful, detailed and polite answers. "
    "这是一个好奇的人类和一个人工智能助手之间的对话。假设你扮演这个AI助手的角色。"
    "仔细阅读所有的图像，并对人类的问题做出信息丰富、有帮助、详细的和礼貌的回答。"
)

YI_VL = TemplateMeta(
    template_type="yi-vl",
    prefix=(),
    prompt=("### Human: {{QUERY}}\n### Assistant:",),
    chat_sep=("\n",),
    suffix=("\n###",),
    system_prefix=("{{SYSTEM}}\n\n",),
    default_system=YI_VL_SYSTEM,
    infer_media_type="round",
    media="yi_vl",
    image_placeholder=(ImageSlot(0), "\n"),
    lazy_tokenize=True,
    stop_words=("\n###",),
    source="ms-swift 2.2.0 template.py L883-962, L1028-1034 (YiVLTemplate)",
    deviations=(
        TYPED_SPECIAL_TOKENS,
        deviation(
            "yi-vl-image-positions",
            "the image sentinel -200 is expanded to 1024 positions at encode time; ms-swift 2.2.0 leaves one -200 "
            "(and '\\n') per image for the model to expand",
            media="text",
            image_placeholder=((-200,), "\n"),
            model_media="yi_vl",
            model_media_marker=-200,
        ),
        *MEDIA_DEVIATIONS,
        YI_FAST_TOKENIZER_PREFIX,
    ),
)


SWIFT_YI_VL = swift_variant(YI_VL)
