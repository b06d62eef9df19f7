"""CogVLM-17B chat template (vicuna tokenizer, no system prompt).

One image, one turn::

    ⟦BOS⟧ ⟦1227 x pad, token_type_ids=1⟧ Question: Describe this image. Answer: [[A cat.]][[⟦EOS⟧]]

The vision positions always follow BOS, whichever turn the image belongs to (ms-swift 2.2.0 and CogVLM's own
``build_conversation_input_ids``); 1227 = (490 // 14)^2 + boi + eoi.
"""

from ..meta import TemplateMeta, register_template

COGVLM = register_template(
    TemplateMeta(
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
            "max_length counts the 1227 vision positions (ms-swift 2.2.0 checks the text-only length, so a "
            "max_length=2048 sample can reach 3275 positions)",
        ),
    )
)
