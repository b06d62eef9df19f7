"""LLaVA-NeXT templates: llava-hf v1.6 (mistral, yi-34b) and lmms-lab (llama3-8b, qwen1.5-72b/110b).

Every ``<image>`` becomes the anyres count of ``<image>`` ids followed by ``\\n`` (what transformers'
LlavaNext expects). llava-mistral, one image::

    <s>[INST] ⟦<image> x N⟧\\nDescribe this image. [/INST][[A cat.]][[</s>]]
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

LLAMA3_LLAVA_SYSTEM = (
    "You are a helpful language and vision assistant. "
    "You are able to understand the visual content that the user provides, "
    "and assist the user with a variety of tasks using natural language."
)

_HF_IMAGE = deviation(
    "llava-hf-image-positions",
    "each <image> becomes the anyres count of <image> ids at encode time (what transformers >= 4.47 LlavaNext "
    "expects); ms-swift 2.2.0 writes '<image>\\n' as text, one <image> id that transformers 4.41 expands in the model",
    media="text",
    image_placeholder=("<image>\n",),
    model_media="llava_next",
    model_media_marker="<image>",
)
_LMMS_IMAGE = deviation(
    "lmms-image-token",
    "<image> is an added token (llama3: 128256, qwen1.5: 151646) expanded to the anyres count, as in transformers' "
    "LlavaNext; ms-swift 2.2.0 writes one -200 sentinel and '\\n' per image for the original LLaVA-NeXT code",
    media="text",
    image_placeholder=((-200,), "\n"),
    tokenizer_added_tokens=False,
    model_media="llava_next",
    model_media_marker=-200,
)

_ROUND = dict(
    infer_media_type="round", media="llava_next", image_placeholder=(ImageSlot(0), "\n"), lazy_tokenize=True
)

LLAVA_MISTRAL = TemplateMeta(
    template_type="llava-mistral",
    prefix=("<s>[INST] ",),
    prompt=("{{QUERY}} [/INST]",),
    chat_sep=("</s>", "[INST] "),
    suffix=("</s>",),
    system_prefix=("<s>[INST] <<SYS>>\n{{SYSTEM}}\n<</SYS>>\n\n",),
    stop_words=("</s>",),
    source="ms-swift 2.2.0 template.py L1563-1596 (Llava1_6MistralTemplate); LLaVA conv_mistral_instruct",
    deviations=(
        TYPED_SPECIAL_TOKENS,
        deviation(
            "llava-mistral-system",
            "system prompt inside the first [INST] as LLaVA's conv_mistral_instruct (SeparatorStyle.LLAMA_2) does; "
            "ms-swift 2.2.0's system_prefix has a lowercase {{system}} that is never filled and drops '<s>[INST] ', "
            "so the system prompt is lost",
            system_prefix=("<<SYS>>\n{{system}}\n<</SYS>>\n\n",),
        ),
        deviation(
            "llava-mistral-turns",
            "later turns start with '[INST] ' (ms-swift 2.2.0's chat_sep is only '</s>'); '</s>' stays a separate, "
            "supervised element as in ms-swift",
            chat_sep=("</s>",),
        ),
        _HF_IMAGE,
        *MEDIA_DEVIATIONS,
    ),
    **_ROUND,
)

LLAVA_YI = TemplateMeta(
    template_type="llava-yi",
    prefix=(),
    prompt=("<|im_start|>user\n{{QUERY}}<|im_end|><|im_start|>assistant\n",),
    chat_sep=("<|im_end|>",),
    suffix=("<|im_end|>",),
    system_prefix=("<|im_start|>system\n{{SYSTEM}}<|im_end|>",),
    stop_words=("<|im_end|>",),
    source="ms-swift 2.2.0 template.py L1563-1596 (LLavaYiTemplate); LLaVA conv_chatml_direct",
    deviations=(
        TYPED_SPECIAL_TOKENS,
        deviation(
            "llava-yi-image-id",
            "<image> is id 64000 as in llava-hf/llava-v1.6-34b-hf config.json image_token_index; ms-swift 2.2.0 "
            "sets the model's image_token_index to 64003, which only transformers 4.42.x produced "
            "(huggingface/transformers#31901); the ids are the tokenizer's in both",
        ),
        _HF_IMAGE,
        *MEDIA_DEVIATIONS,
        YI_FAST_TOKENIZER_PREFIX,
    ),
    **_ROUND,
)

LLAMA_LLAVA_NEXT = TemplateMeta(
    template_type="llama-llava-next",
    aliases=("llama3-llava-next",),
    prefix=("<|begin_of_text|>",),
    prompt=(
        "<|start_header_id|>user<|end_header_id|>\n\n{{QUERY}}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    chat_sep=("<|eot_id|>",),
    suffix=("<|eot_id|>",),
    system_prefix=("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{{SYSTEM}}<|eot_id|>",),
    default_system=LLAMA3_LLAVA_SYSTEM,
    stop_words=("<|eot_id|>",),
    source="ms-swift 2.2.0 template.py L1728-1759 (LlamaLlavaNextTemplate); LLaVA-NeXT conv_llava_llama_3",
    deviations=(
        TYPED_SPECIAL_TOKENS,
        deviation(
            "llama3-llava-format",
            "Llama-3 format as LLaVA-NeXT builds it (Meta-Llama-3-Instruct chat template): <|begin_of_text|> "
            "always, <|eot_id|> after the system text, 'user<|end_header_id|>\\n\\n<image>\\n'; ms-swift 2.2.0 "
            "omits the system <|eot_id|>, emits BOS only with a system and has three newlines before the image",
            prefix=(),
            prompt=(
                "<|start_header_id|>user<|end_header_id|>\n\n",
                "\n{{QUERY}}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            ),
            system_prefix=("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{{SYSTEM}}",),
        ),
        _LMMS_IMAGE,
        *MEDIA_DEVIATIONS,
    ),
    **_ROUND,
)

LLAVA_QWEN = TemplateMeta(
    template_type="llava-qwen-instruct",
    aliases=("llava-qwen",),
    prefix=(),
    prompt=("<|im_start|>user\n{{QUERY}}<|im_end|>\n<|im_start|>assistant\n",),
    chat_sep=("<|im_end|>\n",),
    suffix=("<|im_end|>",),
    system_prefix=("<|im_start|>system\n{{SYSTEM}}<|im_end|>\n",),
    default_system="You are a helpful assistant.",
    stop_words=("<|im_end|>",),
    source="ms-swift 2.2.0 template.py L1515-1560 (LLavaQwenTemplate); LLaVA-NeXT conv_qwen_1_5",
    deviations=(
        TYPED_SPECIAL_TOKENS,
        deviation(
            "llava-qwen-system-period",
            "default system 'You are a helpful assistant.' with the period, as LLaVA-NeXT's conv_qwen_1_5 (and "
            "ms-swift >= 2.4); ms-swift 2.2.0 drops the period",
            default_system="You are a helpful assistant",
        ),
        _LMMS_IMAGE,
        *MEDIA_DEVIATIONS,
    ),
    **_ROUND,
)


SWIFT_LLAVA_MISTRAL = swift_variant(LLAVA_MISTRAL)
SWIFT_LLAVA_YI = swift_variant(LLAVA_YI)
SWIFT_LLAMA_LLAVA_NEXT = swift_variant(LLAMA_LLAVA_NEXT)
SWIFT_LLAVA_QWEN = swift_variant(LLAVA_QWEN)
