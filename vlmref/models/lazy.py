"""A family package imports no torch: its architecture's names load from ``<package>.arch`` on first use.

>>> __getattr__ = lazy_arch_names("vlmref.models.yi_vl", ["YiVLForCausalLM"])  # in a family's __init__.py
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_arch_names(package: str, names: Iterable[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that returns ``names`` from ``package.arch``, importing it (and torch) when first asked."""
    wanted = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name in wanted:
            return getattr(importlib.import_module(f"{package}.arch"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
