"""The Yi-VL-6B / 34B family, all of it in this folder (``family.py`` registers it; see ``vlmref.models.family``).
Importing the package imports no torch; the architecture's names load on first use."""

from __future__ import annotations

from ..lazy import lazy_arch_names

__all__ = ['COMPONENTS', 'YiVLConfig', 'YiVLForCausalLM', 'load_vision_tower']
__getattr__ = lazy_arch_names(__name__, __all__)
