"""The ``toy`` template: BOS, ``USER: ... ASSISTANT:`` turns, EOS after each reply. One image::

    <s>USER: ⟦4 image positions⟧\\nDescribe this image. ASSISTANT:[[A cat.]][[</s>]]
"""

from vlmref.templates.meta import ImageSlot, TemplateMeta

TOY = TemplateMeta(
    template_type="toy",
    prefix=(("bos_token_id",),),
    prompt=("USER: {{QUERY}} ASSISTANT:",),
    chat_sep=(("eos_token_id",),),
    suffix=(("eos_token_id",),),
    infer_media_type="round",
    media="toy",
    image_placeholder=(ImageSlot(0), "\n"),
    source="tests/toy_family (a plugin family for the plugin mechanism's test)",
)
