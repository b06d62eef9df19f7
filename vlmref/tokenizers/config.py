"""A tokenizer folder's configuration: ``special_tokens_map.json`` + ``tokenizer_config.json`` (+ the chat template),
read without any tokenizer backend, for every loader (``loader``, ``sentencepiece``, ``qwen``)::

    cfg = read_tokenizer_config("01ai/Yi-6B-Chat")   # a local folder
    token_content(cfg["bos_token"])                  # '<|startoftext|>'
    added_tokens_from_config(cfg)                    # [(0, {'content': '<unk>', ...}), (1, ...), ...]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def token_content(value: Any) -> str | None:
    """A special-token entry as a string (configs store either a string or an AddedToken dict)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("content")
    return str(value)


def read_tokenizer_config(path: str | os.PathLike) -> dict[str, Any]:
    """special_tokens_map.json overlaid with tokenizer_config.json (the latter wins); {} when neither exists."""
    path = Path(path)
    cfg: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        file = path / name
        if file.is_file():
            with open(file, encoding="utf-8") as f:
                cfg.update(json.load(f))
    template = path / "chat_template.jinja"
    if "chat_template" not in cfg and template.is_file():
        cfg["chat_template"] = template.read_text(encoding="utf-8")
    return cfg


def added_tokens_from_config(cfg: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """`added_tokens_decoder` entries as (id, dict) sorted by id."""
    out = []
    for idx, entry in (cfg.get("added_tokens_decoder") or {}).items():
        if isinstance(entry, str):
            entry = {"content": entry, "special": True}
        out.append((int(idx), entry))
    return sorted(out, key=lambda x: x[0])
