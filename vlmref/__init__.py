"""vlmref: a test-driven reference for multimodal fine-tuning of five VLM families.

Importing ``vlmref`` is cheap and never imports torch. The seeds' Python API is exposed lazily::

    from vlmref import get_model_tokenizer, get_template, get_default_template_type, ModelType, seed_everything
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "ModelType": "vlmref.models.model_types",
    "get_default_template_type": "vlmref.models.model_types",
    "get_model_tokenizer": "vlmref.models.loader",
    "get_template": "vlmref.templates",
    "inference": "vlmref.llm.inference",
    "inference_stream": "vlmref.llm.inference",
    "TemplateType": "vlmref.templates",
    "seed_everything": "vlmref.utils",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vlmref' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
