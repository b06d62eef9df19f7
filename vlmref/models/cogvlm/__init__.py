"""The CogVLM-17B family, all of it in this folder (``family.py`` registers it; see ``vlmref.models.family``).
Importing the package imports no torch; the architecture's names load on first use."""

from __future__ import annotations

from ..lazy import lazy_arch_names

__all__ = ['COGVLM_CHAT', 'CogVLMConfig', 'CogVLMForCausalLM', 'CogVLMModel', 'SPEC', 'TINY_COGVLM']
__getattr__ = lazy_arch_names(__name__, __all__)
