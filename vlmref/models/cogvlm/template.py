"""CogVLM-17B chat template (vicuna tokenizer, no system prompt).

One image, one turn::

    ⟦BOS⟧ ⟦1227 x pad, token_type_ids=1⟧ Question: Describe this image. Answer: [[A cat.]][[⟦EOS⟧]]

The vision positions always follow BOS, whichever turn the image belongs to (ms-swift 2.2.0 and CogVLM's own
``build_conversation_input_ids``); 1227 = (490 // 14)^2 + boi + eoi.
"""

from ...templates.meta import (
    MAX_LENGTH_COUNTS_IMAGES,
    SPLIT_TAGS,
    TYPED_SPECIAL_TOKENS,
    TemplateMeta,
    deviation,
    swift_variant,
)

COGVLM = TemplateMeta(
    template_type="cogvlm",
    prefix=(("bos_token_id",),),
    prompt=("Question: {{QUERY}} Answer:",),
    chat_sep=("\n",),
    suffix=(("eos_token_id",),),
    infer_media_type="dialogue",
    media="cogvlm",
    image_placeholder=(),
    max_images=1,
    lazy_tokenize=True,
    stop_words=("</s>",),
    source="ms-swift 2.2.0 template.py L1861-1925 (CogTemplate); THUDM/cogvlm-chat-hf build_conversation_input_ids",
    deviations=(
        TYPED_SPECIAL_TOKENS,
        MAX_LENGTH_COUNTS_IMAGES,  # ms-swift 2.2.0 checks the text-only length: max_length=2048 can reach 3275
        SPLIT_TAGS,
        deviation(
            "cogvlm-text-only",
            "a sample without an image encodes as text; ms-swift 2.2.0's CogTemplate.encode passes an empty image "
            "to build_conversation_input_ids, which fails (the swift-2.2.0 profile raises a named error)",
            media="swift_cogvlm",
        ),
        deviation(
            "cogvlm-fast-tokenizer-prefix",
            "every text segment is encoded as the sentencepiece model does (a '▁' before each, also before a "
            "leading space); ms-swift 2.2.0 loads vicuna-7b-v1.5 with AutoTokenizer, a fast tokenizer converted "
            "with the repo's legacy=false (transformers 4.41 Metaspace prepend_scheme='first'): no '▁' before a "
            "segment that starts with a space, none after a special token inside a segment",
            tokenizer_prefix_policy="first_chunk",
        ),
    ),
)


SWIFT_COGVLM = swift_variant(COGVLM)
