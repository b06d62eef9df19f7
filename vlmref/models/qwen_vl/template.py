"""Qwen (text) and Qwen-VL ChatML templates.

qwen-vl, one image from the images column, default system::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n<img>cat.png</img>Describe this
    image.<|im_end|>\\n<|im_start|>assistant\\n [[A cat.]][[<|im_end|>]]

The Qwen-VL tokenizer turns ``<img>PATH</img>`` into 258 ids (``<img>``, the path's UTF-8 bytes as ids 0-255,
``<imgpad>`` up to 256, ``</img>``). Inline ``<img>`` tags in the text (``Picture 1:<img>p</img>\\n``) work the same.
"""

from ...templates.meta import MEDIA_DEVIATIONS, TYPED_SPECIAL_TOKENS, TemplateMeta, deviation, swift_variant

QWEN_SYSTEM = "You are a helpful assistant."
_SOURCE = "ms-swift 2.2.0 swift/llm/utils/template.py L785-821 (QwenTemplate, QwenVLTemplate)"

_CHATML = dict(
    prefix=(),
    prompt=("<|im_start|>user\n{{QUERY}}<|im_end|>\n<|im_start|>assistant\n",),
    chat_sep=("<|im_end|>\n",),
    suffix=("<|im_end|>",),
    system_prefix=("<|im_start|>system\n{{SYSTEM}}<|im_end|>\n",),
    default_system=QWEN_SYSTEM,
    stop_words=("<|im_end|>",),
    source=_SOURCE,
)

QWEN = TemplateMeta(template_type="qwen", deviations=(TYPED_SPECIAL_TOKENS,), **_CHATML)

QWEN_VL = TemplateMeta(
    template_type="qwen-vl",
    media="qwen_vl",
    image_placeholder=("<img>{{PATH}}</img>",),
    image_paths_only=True,
    user_markup=("<img>", "</img>", "<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>"),
    deviations=(
        TYPED_SPECIAL_TOKENS,
        deviation(
            "qwen-vl-img-in-reply",
            "<img>PATH</img> in a response, history response or system is refused; ms-swift 2.2.0's Qwen-VL "
            "tokenizer expands it into a supervised image",
            reply_markup_check=False,
        ),
        *MEDIA_DEVIATIONS,
    ),
    **_CHATML,
)

SWIFT_QWEN = swift_variant(QWEN)
SWIFT_QWEN_VL = swift_variant(QWEN_VL)

