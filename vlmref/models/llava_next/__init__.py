"""The LLaVA-NeXT (llava-hf v1.6 and lmms-lab checkpoints) family, all of it in this folder (``family.py`` registers it; see ``vlmref.models.family``).
Importing the package imports no torch; the architecture's names load on first use."""

from __future__ import annotations

from ..lazy import lazy_arch_names

__all__ = ['COMPONENTS', 'LlavaNextConfig', 'LlavaNextForCausalLM', 'ORIGINAL_KEY_MAPPING', 'adapt_to_tokenizer']
__getattr__ = lazy_arch_names(__name__, __all__)
