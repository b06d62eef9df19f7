"""Real tokenizers for the reference templates (sentencepiece, tokenizer.json, Qwen tiktoken).

Importing this package is cheap: transformers / sentencepiece / tiktoken are imported only when a
tokenizer is actually loaded.
"""

from __future__ import annotations

from .loader import KINDS, load_tokenizer, read_tokenizer_config, shared_tokenizers_dir

__all__ = ["KINDS", "load_tokenizer", "read_tokenizer_config", "shared_tokenizers_dir"]
