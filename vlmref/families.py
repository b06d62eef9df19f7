"""The model families vlmref serves: the one list of them, and how a plugin adds one.

A family is a package whose ``family`` module registers a ``vlmref.models.family.FamilySpec`` on import (its model
types, templates, media steps, image processor, architecture module). The registries that families fill call
``load_families()`` before their first read, so no other module imports or names a family::

    vlmref.models.cogvlm.family, vlmref.models.qwen_vl.family, ...    built in, in this order
    entry points of group "vlmref.families" (value "pkg.family")      installed plugins, by entry-point name
    VLMREF_FAMILY_MODULES="mypkg.family,other.family"                 plugins named in the environment

Pure Python: this module imports no family by itself (``importlib`` does, on first use).
"""

from __future__ import annotations

import functools
import importlib
import os
from importlib import metadata

BUILTIN_FAMILY_MODULES = (
    "vlmref.models.cogvlm.family",
    "vlmref.models.qwen_vl.family",
    "vlmref.models.internlm_xcomposer2.family",
    "vlmref.models.yi_vl.family",
    "vlmref.models.llava_next.family",
)
FAMILY_MODULES_ENV = "VLMREF_FAMILY_MODULES"
ENTRY_POINT_GROUP = "vlmref.families"

_loaded: list[str] = []
_loading = False


class FamilyPluginError(ImportError):
    """A family module named by an entry point or ``VLMREF_FAMILY_MODULES`` cannot be imported."""


@functools.cache
def _entry_point_modules() -> tuple[str, ...]:
    """Installed plugins' family modules (entry points do not change while a process runs)."""
    return tuple(ep.value for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name))


def family_modules() -> tuple[str, ...]:
    """Every family module to load, built-in first: entry points (by name), then ``$VLMREF_FAMILY_MODULES``."""
    names = [*BUILTIN_FAMILY_MODULES, *_entry_point_modules()]
    names += [n.strip() for n in os.environ.get(FAMILY_MODULES_ENV, "").replace(os.pathsep, ",").split(",")
              if n.strip()]
    return tuple(dict.fromkeys(names))


def load_families() -> list[str]:
    """Import every family module not imported yet (each registers itself); returns the modules loaded so far.

    Re-entrant calls (a registry read while a family registers) return at once; a plugin that does not import is a
    ``FamilyPluginError`` naming where it was listed."""
    global _loading
    if _loading:
        return list(_loaded)
    _loading = True
    try:
        builtin = set(BUILTIN_FAMILY_MODULES)
        for name in family_modules():
            if name in _loaded:
                continue
            try:
                importlib.import_module(name)
            except ImportError as err:
                if name in builtin:
                    raise
                where = f"${FAMILY_MODULES_ENV} or entry point group {ENTRY_POINT_GROUP!r}"
                raise FamilyPluginError(f"family module {name!r} (listed in {where}) cannot be imported: {err}") \
                    from err
            _loaded.append(name)
    finally:
        _loading = False
    return list(_loaded)
