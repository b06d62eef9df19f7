"""A sixth model family, ``toy``, added as a plugin (``VLMREF_FAMILY_MODULES=toy_family.family``): nothing in
``vlmref/`` names it. One model type, ``toy-vlm``: a Llama decoder (llama2 tokenizer) + a patchify-and-project
"vision" part that gives 4 positions per 28-px image.

``family.py`` registers it (pure Python); ``template.py``, ``media.py``, ``processing.py``; ``arch.py`` over
``config.py`` and ``modeling.py`` (torch). Importing this package imports no torch.
"""
