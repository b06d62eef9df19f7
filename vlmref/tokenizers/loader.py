"""`load_tokenizer(kind, path, special=...)`: one entry point for every tokenizer family.

Module-level imports stay light (stdlib only); backends are imported inside the functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import added_tokens_from_config, read_tokenizer_config, token_content  # noqa: F401 - re-exported

KINDS = ("sentencepiece", "tokenizer_json", "qwen", "qwen-vl")
_SPECIAL_KEYS = ("bos", "eos", "pad")


def shared_tokenizers_dir() -> Path | None:
    """Folder with the real tokenizer files: $VLMREF_TOKENIZERS_DIR, else <repo>/../shared/tokenizers, else None."""
    env = os.environ.get("VLMREF_TOKENIZERS_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parent.parent.parent  # parent of the `vlmref` package dir
    candidate = repo.parent / "shared" / "tokenizers"
    return candidate if candidate.is_dir() else None


def _load_tokenizer_json(path: Path):
    """HF fast tokenizer straight from tokenizer.json; special-token names from tokenizer_config.json."""
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    file = path / "tokenizer.json"
    if not file.is_file():
        raise FileNotFoundError(f"no tokenizer.json in {path}")
    cfg = read_tokenizer_config(path)
    kwargs: dict[str, Any] = {
        f"{name}_token": token_content(cfg.get(f"{name}_token")) for name in ("bos", "eos", "unk", "pad")
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    for key in ("model_max_length", "padding_side", "chat_template"):
        if key in cfg:
            kwargs[key] = cfg[key]
    kwargs["clean_up_tokenization_spaces"] = False  # transformers ignores it for BPE anyway (and warns)
    # No name_or_path on purpose: transformers would otherwise query the Hub (mistral-regex check).
    return TokenizersBackend(tokenizer_file=str(file), **kwargs)


def _ensure_token(tok, content: str) -> None:
    """Register `content` as a special added token (no new id if it is already in the vocabulary)."""
    from transformers import AddedToken

    tok.add_tokens([AddedToken(content, special=True, normalized=False)], special_tokens=True)


def apply_special(tok, special: dict[str, Any] | None):
    """Apply bos/eos/pad overrides and `add_tokens`, then ms-swift's rule: no pad token -> pad := eos."""
    special = dict(special or {})
    unknown = set(special) - {*_SPECIAL_KEYS, "add_tokens"}
    if unknown:
        raise ValueError(f"unknown keys in special: {sorted(unknown)}")
    # added tokens first: their ids follow the vocabulary in the given order (llava-hf: <image>=32000, <pad>=32001)
    for content in special.get("add_tokens") or ():
        _ensure_token(tok, content)
    for name in _SPECIAL_KEYS:
        value = special.get(name)
        if value is not None:  # None means "keep the tokenizer's own"
            _ensure_token(tok, value)
            setattr(tok, f"{name}_token", value)
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def load_tokenizer(kind: str, path: str | os.PathLike, *, special: dict | None = None, prefix_policy: str | None = None):
    """Load a tokenizer of `kind` (one of KINDS) from folder `path`, applying `special` overrides.

    special: {"bos": str|None, "eos": str|None, "pad": str|None, "add_tokens": [str, ...]}; None keeps the
    tokenizer's own token; add_tokens are appended as special added tokens with the next free ids, in order.
    prefix_policy: sentencepiece tokenizers only, see ``vlmref.tokenizers.sentencepiece``.
    """
    if prefix_policy is not None and kind != "sentencepiece":
        raise ValueError(f"prefix_policy applies to sentencepiece tokenizers, not {kind!r}")
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer folder not found: {path}")
    if kind == "sentencepiece":
        from .sentencepiece import load_sentencepiece

        tok = load_sentencepiece(path, prefix_policy=prefix_policy or "sentencepiece")
    elif kind == "tokenizer_json":
        tok = _load_tokenizer_json(path)
    elif kind in ("qwen", "qwen-vl"):
        from .qwen import load_qwen

        tok = load_qwen(path, vl=kind == "qwen-vl")
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {KINDS}")
    return apply_special(tok, special)
