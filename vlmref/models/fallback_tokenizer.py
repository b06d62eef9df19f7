"""Stand-in tokenizer files for ``create-tiny`` when the family's real tokenizer files are not available.

The special tokens keep the ids the real tokenizer gives them (recorded from the real tokenizers in
``vlmref/assets/tokenizer_specials.json`` by ``scripts/make_golden.py``), so tiny models keep the real vocabulary
size and every template works unchanged. Ordinary text is byte-level:

* ``tokenizer.json`` families (everything but Qwen-VL): byte b is id ``300 + b`` (byte-level BPE without merges),
  the special tokens sit in the vocabulary at their real ids;
* Qwen-VL: a ``qwen.tiktoken`` whose ranks 0-255 are the single bytes and whose remaining ranks, up to the first
  special id (151643), are filler byte strings starting with 0xFF (never valid UTF-8, so never merged), so the
  Qwen-VL tokenizer computes the real special ids and keeps its ``<img>`` byte expansion.

These files tokenize text differently from the real ones (ids are bytes); they exist so a tiny checkpoint, the
demo and CI run anywhere. ``vlmref_tiny.json`` in the checkpoint records which tokenizer was used.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path
from typing import Any

from .model_types import MODELS

BYTE_ID_OFFSET = 300
QWEN_FIRST_SPECIAL = 151643


def recorded_specials(model_type: str) -> dict[str, Any]:
    """``{'bos', 'eos', 'pad', 'ids': {token: id}}`` as the real tokenizer of ``model_type``'s template has them."""
    data = json.loads(resources.files("vlmref").joinpath("assets/tokenizer_specials.json").read_text(encoding="utf-8"))
    template = MODELS.get(model_type).template
    if template not in data:
        raise KeyError(f"no recorded special tokens for template {template!r} (run scripts/make_golden.py)")
    return data[template]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what the ByteLevel pre-tokenizer emits)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def write_fallback_tokenizer(model_type: str, folder: str | Path) -> list[str]:
    """Write stand-in tokenizer files for ``model_type`` into ``folder``; returns the file names."""
    folder = Path(folder)
    specials = recorded_specials(model_type)
    if MODELS.get(model_type).tokenizer.kind in ("qwen", "qwen-vl"):
        return _write_qwen_tiktoken(folder)
    return _write_tokenizer_json(folder, specials)


def _write_tokenizer_json(folder: Path, specials: dict[str, Any]) -> list[str]:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    table = _bytes_to_unicode()
    vocab = {table[b]: BYTE_ID_OFFSET + b for b in range(256)}
    ids = dict(specials["ids"])
    for role in ("bos", "eos", "pad"):
        if specials.get(role) and specials[role] not in ids:
            raise KeyError(f"recorded {role} token {specials[role]!r} has no id")
    vocab.update(ids)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in sorted(ids, key=ids.get)])
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 4096, "vlmref_fallback": True}
    for role in ("bos", "eos", "pad"):
        if specials.get(role):
            config[f"{role}_token"] = specials[role]
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return ["tokenizer.json", "tokenizer_config.json"]


def _write_qwen_tiktoken(folder: Path) -> list[str]:
    lines = [f"{base64.b64encode(bytes([b])).decode()} {b}" for b in range(256)]
    for rank in range(256, QWEN_FIRST_SPECIAL):
        filler = b"\xff" + rank.to_bytes(3, "big")
        lines.append(f"{base64.b64encode(filler).decode()} {rank}")
    (folder / "qwen.tiktoken").write_text("\n".join(lines) + "\n", encoding="ascii")
    return ["qwen.tiktoken"]
