"""``get_model_tokenizer``: the seeds' loading API. Tokenizers load from a local folder, never with remote code.

>>> model, tok = get_model_tokenizer('qwen-vl-chat', load_model=False, model_id_or_path='path/with/qwen.tiktoken')
... # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..tokenizers import load_tokenizer, shared_tokenizers_dir
from .registry import MODELS, ModelMeta

_TOKENIZER_FILES = {
    "sentencepiece": ("tokenizer.model",),
    "tokenizer_json": ("tokenizer.json",),
    "qwen": ("qwen.tiktoken",),
    "qwen-vl": ("qwen.tiktoken",),
}


def _tokenizer_kind(meta: ModelMeta, folder: Path) -> str:
    """The registry's loader kind; a folder that only has the other common format is accepted too."""
    kind = meta.tokenizer.kind
    if any((folder / f).is_file() for f in _TOKENIZER_FILES[kind]):
        return kind
    for alt in ("tokenizer_json", "sentencepiece"):
        if alt != kind and kind in ("tokenizer_json", "sentencepiece") and (folder / _TOKENIZER_FILES[alt][0]).is_file():
            return alt
    expected = " or ".join(_TOKENIZER_FILES[kind])
    raise FileNotFoundError(f"{meta.model_type}: no {expected} in {folder}")


def get_model_tokenizer(
    model_type: str,
    torch_dtype: Any = None,
    model_kwargs: dict[str, Any] | None = None,
    load_model: bool = True,
    *,
    model_id_or_path: str | os.PathLike | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """Return ``(model, tokenizer)`` for ``model_type`` (a seed name or an ms-swift 2.2.0 alias).

    With ``load_model=False`` the model is ``None`` and only the tokenizer is built, from ``model_id_or_path`` (a
    folder with the model's tokenizer files). The tokenizer gets the special tokens the model adds (e.g. llava-hf's
    ``<image>``), ms-swift's eos overrides, and pad := eos when it has none.
    """
    meta = MODELS.get(model_type)
    if model_id_or_path is None:
        raise ValueError(
            f"{meta.model_type}: pass model_id_or_path (a local folder); downloading {meta.hf_model_id} / "
            f"{meta.ms_model_id} from a hub arrives with the model loaders"
        )
    folder = Path(model_id_or_path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{meta.model_type}: model_id_or_path {str(folder)!r} is not a local folder")
    tokenizer = load_tokenizer(_tokenizer_kind(meta, folder), folder, special=meta.tokenizer.special())
    tokenizer.model_type = meta.model_type
    tokenizer.model_dir = str(folder)
    if not load_model:
        return None, tokenizer
    raise NotImplementedError(
        f"{meta.model_type}: building the model (load_model=True) is not available in this version; "
        "use load_model=False for the tokenizer"
    )


def shared_tokenizer_folder(model_type: str) -> Path | None:
    """The folder of ``../shared/tokenizers`` (or $VLMREF_TOKENIZERS_DIR) holding this model's tokenizer, if any."""
    root = shared_tokenizers_dir()
    if root is None:
        return None
    folder = root / MODELS.get(model_type).tokenizer.family
    return folder if folder.is_dir() else None
