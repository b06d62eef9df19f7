"""The InternLM-XComposer2 / 2.5-7B family, all of it in this folder (``family.py`` registers it; see ``vlmref.models.family``).
Importing the package imports no torch; the architecture's names load on first use."""

from __future__ import annotations

from ..lazy import lazy_arch_names

__all__ = ['IXC2_5_7B', 'IXC2_7B', 'InternLMXComposer2Config', 'InternLMXComposer2ForCausalLM', 'TINY', 'TINY_2_5']
__getattr__ = lazy_arch_names(__name__, __all__)
