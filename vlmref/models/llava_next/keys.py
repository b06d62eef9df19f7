"""Checkpoint key mappings for LLaVA-NeXT: upstream checkpoint names -> vlmref (transformers 5) module names.

Two upstream layouts exist and both load into ``LlavaNextForCausalLM`` without remote code:

* llava-hf (transformers < 4.52 module names)::

      language_model.model.layers.0.self_attn.q_proj.weight  ->  model.language_model.layers.0.self_attn.q_proj.weight
      language_model.lm_head.weight                          ->  lm_head.weight
      vision_tower.vision_model.encoder.layers.0...          ->  model.vision_tower.encoder.layers.0...
      multi_modal_projector.linear_1.weight / image_newline  ->  model.multi_modal_projector... / model.image_newline

  This is transformers' own checkpoint conversion mapping (``conversion_mapping.py``: ``llava_next``, ``LlavaModel``
  and ``CLIPVisionModel`` entries), applied by ``from_pretrained``; ``hf_to_model`` runs the same machinery.

* original LLaVA-NeXT (lmms-lab): ``ORIGINAL_KEY_MAPPING`` renames them to the llava-hf names first (the renames of
  transformers' ``convert_llava_next_weights_to_hf.py``), then the mapping above applies::

      model.embed_tokens / model.layers.* / model.norm   ->  language_model.model.*
      lm_head.weight                                      ->  language_model.lm_head.weight
      model.mm_projector.0 / model.mm_projector.2         ->  multi_modal_projector.linear_1 / linear_2
      model.vision_tower.vision_tower.vision_model.*      ->  vision_tower.vision_model.*
      model.image_newline                                 ->  image_newline

>>> original_to_hf_key("model.mm_projector.2.bias")
'multi_modal_projector.linear_2.bias'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# regex -> replacement, in transformers' ``key_mapping`` form (``from_pretrained(..., key_mapping=...)``)
ORIGINAL_KEY_MAPPING: dict[str, str] = {
    r"^model\.embed_tokens\.": "language_model.model.embed_tokens.",
    r"^model\.layers\.": "language_model.model.layers.",
    r"^model\.norm\.": "language_model.model.norm.",
    r"^lm_head\.": "language_model.lm_head.",
    r"^model\.mm_projector\.0\.": "multi_modal_projector.linear_1.",
    r"^model\.mm_projector\.2\.": "multi_modal_projector.linear_2.",
    r"^model\.vision_tower\.vision_tower\.": "vision_tower.",
    r"^model\.image_newline": "image_newline",
}
_ORIGINAL = [(re.compile(k), v) for k, v in ORIGINAL_KEY_MAPPING.items()]


def original_to_hf_key(key: str) -> str:
    """One original LLaVA-NeXT checkpoint key in llava-hf naming (unchanged if no rule matches)."""
    for pattern, repl in _ORIGINAL:
        if pattern.search(key):
            return pattern.sub(repl, key, count=1)
    return key


def hf_to_model(model: Any, keys: Iterable[str], key_mapping: dict[str, str] | None = None) -> dict[str, str]:
    """Map checkpoint keys to ``model``'s state-dict keys with transformers' own loading-time renaming.

    ``key_mapping`` (e.g. ``ORIGINAL_KEY_MAPPING``) runs first, as in ``from_pretrained(..., key_mapping=...)``.
    """
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    transforms = get_model_conversion_mapping(model, key_mapping=key_mapping)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    own = dict.fromkeys(model.state_dict())
    return {k: rename_source_key(k, renamings, converters, model.base_model_prefix, own)[0] for k in keys}
