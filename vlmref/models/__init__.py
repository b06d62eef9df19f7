"""Model registry (pure data) and loaders (``loader`` imports transformers lazily)."""

from .model_types import MODELS, DatasetRules, Footprint, ModelMeta, ModelType, TokenizerSpec, get_default_template_type

__all__ = ["MODELS", "DatasetRules", "Footprint", "ModelMeta", "ModelType", "TokenizerSpec", "get_default_template_type"]
