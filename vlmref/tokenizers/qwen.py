"""Qwen(-VL) tokenizer on `tiktoken` (no remote code), matching Qwen's tokenization_qwen.py.

Facts taken from upstream tokenization_qwen.py (Qwen/Qwen-7B and Qwen/Qwen-VL-Chat on the Hub):
- PAT_STR below is Qwen's split regex (note `\\p{N}` single digits, unlike cl100k's `\\p{N}{1,3}`).
- qwen.tiktoken lines are `<base64 token> <rank>`; special ids follow the ranks in this order:
  `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, `<|extra_0|>`..`<|extra_204|>`, then for Qwen-VL
  `<ref> </ref> <box> </box> <quad> </quad> <img> </img> <imgpad>`.
- Text is NFC-normalised; special-token text is encoded as special (allowed_special="all").
- Qwen-VL: every `<img>...</img>` span becomes `<img>`, one token per UTF-8 byte b of the content (token id b),
  `<imgpad>` up to IMG_TOKEN_SPAN=256, `</img>`; longer content raises
  ValueError('The content in <img>..</img> is too long'); a missing `</img>` raises 'Unclosed image token'.
"""

from __future__ import annotations

import base64
import os
import shutil
import unicodedata
from pathlib import Path
from typing import Any

import tiktoken
from transformers import AddedToken, PreTrainedTokenizer

from .config import added_tokens_from_config, read_tokenizer_config, token_content

PAT_STR = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
ENDOFTEXT, IMSTART, IMEND = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
QWEN_SPECIALS = (ENDOFTEXT, IMSTART, IMEND) + tuple(f"<|extra_{i}|>" for i in range(205))
VL_SPECIALS = ("<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", "<img>", "</img>", "<imgpad>")
IMG_TOKEN_SPAN = 256
VOCAB_FILE = "qwen.tiktoken"


def load_ranks(file: str | os.PathLike) -> dict[bytes, int]:
    """`<base64 token> <rank>` per line -> {token bytes: rank}."""
    with open(file, "rb") as f:
        return {
            base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in f.read().splitlines() if line)
        }


class QwenTokenizer(PreTrainedTokenizer):
    """Qwen-7B / Qwen-VL tokenizer. Tokens are `bytes` (BPE pieces) or `str` (special tokens)."""

    vocab_files_names = {"vocab_file": VOCAB_FILE}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str, vl: bool = False, errors: str = "replace", **kwargs):
        self.vocab_file = str(vocab_file)
        self.vl = bool(vl)
        self.errors = errors
        self.mergeable_ranks = load_ranks(vocab_file)
        names = QWEN_SPECIALS + (VL_SPECIALS if self.vl else ())
        start = len(self.mergeable_ranks)
        self.special_tokens = {tok: start + i for i, tok in enumerate(names)}
        self.eod_id = self.special_tokens[ENDOFTEXT]
        self._build()
        kwargs.setdefault("special_tokens_pattern", "none")
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(vl=self.vl, errors=errors, **kwargs)

    def _build(self) -> None:
        self.tokenizer = tiktoken.Encoding(
            "qwen", pat_str=PAT_STR, mergeable_ranks=self.mergeable_ranks, special_tokens=self.special_tokens
        )
        self.decoder: dict[int, bytes | str] = {v: k for k, v in self.mergeable_ranks.items()}
        self.decoder.update({v: k for k, v in self.special_tokens.items()})

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("tokenizer", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._build()

    def __len__(self) -> int:
        return len(self.mergeable_ranks) + len(self.special_tokens)

    @property
    def vocab_size(self) -> int:
        return len(self)

    def _update_total_vocab_size(self) -> None:
        self.total_vocab_size = len(self)

    def get_vocab(self) -> dict[bytes | str, int]:
        return {**self.mergeable_ranks, **self.special_tokens}

    def _add_tokens(self, new_tokens, special_tokens: bool = False) -> int:
        """New tokens become tiktoken special tokens with the next free ids; known ones are left as they are."""
        added = 0
        for token in new_tokens:
            content = token.content if isinstance(token, AddedToken) else str(token)
            if not content or content in self.special_tokens or content.encode("utf-8") in self.mergeable_ranks:
                continue
            idx = len(self)
            self.special_tokens[content] = idx
            self._added_tokens_decoder[idx] = AddedToken(content, special=True, normalized=False)
            self._added_tokens_encoder[content] = idx
            added += 1
        if added:
            self._build()
        self._update_total_vocab_size()
        return added

    # -- encoding -------------------------------------------------------------------------------------
    def tokenize(self, text: str, allowed_special="all", disallowed_special=(), **kwargs) -> list[bytes | str]:
        if kwargs.get("split_special_tokens"):  # special-token text is read as plain text
            allowed_special = set()
        return [self.decoder[i] for i in self._encode_ids(text, allowed_special, disallowed_special)]

    def encode_plain(self, text: str) -> list[int]:
        """``encode(text, add_special_tokens=False)`` without transformers' per-call overhead (same ids)."""
        return self._encode_ids(text)

    def _encode_ids(self, text: str, allowed_special="all", disallowed_special=()) -> list[int]:
        text = unicodedata.normalize("NFC", text)
        ids = self.tokenizer.encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)
        return self._expand_images(ids) if self.vl else ids

    def _expand_images(self, ids: list[int]) -> list[int]:
        start, end, pad = (self.special_tokens[t] for t in ("<img>", "</img>", "<imgpad>"))
        out: list[int] = []
        pos = 0
        while start in ids[pos:]:
            s = ids.index(start, pos)
            if end not in ids[s:]:
                raise ValueError("Unclosed image token")
            e = ids.index(end, s)
            pieces = [self.decoder[i] for i in ids[s + 1 : e]]
            if any(isinstance(p, str) for p in pieces):
                raise ValueError("special tokens are not allowed inside <img>..</img>")
            content = b"".join(pieces)
            if len(content) > IMG_TOKEN_SPAN:
                raise ValueError(
                    f"The content in <img>..</img> is too long: {len(content)} bytes > {IMG_TOKEN_SPAN} (IMG_TOKEN_SPAN)"
                )
            out += ids[pos:s] + [start] + list(content) + [pad] * (IMG_TOKEN_SPAN - len(content)) + [end]
            pos = e + 1
        return out + ids[pos:]

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, (str, bytes)):
            return self._convert_token_to_id(tokens)
        return [self._convert_token_to_id(t) for t in tokens]

    def _convert_token_to_id(self, token: bytes | str) -> int | None:
        if isinstance(token, str):
            if token in self.special_tokens:
                return self.special_tokens[token]
            token = token.encode("utf-8")
        return self.mergeable_ranks.get(token)

    def _convert_id_to_token(self, index: int) -> bytes | str:
        if index in self.decoder:
            return self.decoder[index]
        raise ValueError(f"unknown id {index}")

    # -- decoding -------------------------------------------------------------------------------------
    def convert_tokens_to_string(self, tokens: list[bytes | str]) -> str:
        text, buf = [], b""
        for t in tokens:
            if isinstance(t, bytes):
                buf += t
                continue
            if buf:
                text.append(buf.decode("utf-8", errors=self.errors))
                buf = b""
            text.append(t)
        if buf:
            text.append(buf.decode("utf-8", errors=self.errors))
        return "".join(text)

    def _decode(self, token_ids, skip_special_tokens: bool = False, errors: str | None = None, **kwargs) -> str:
        """Bytes of consecutive BPE ids are joined before UTF-8 decoding; `<img>` spans decode to their content."""
        ids = [token_ids] if isinstance(token_ids, int) else [int(i) for i in token_ids]
        tokens: list[bytes | str] = []
        start, end, pad = (self.special_tokens.get(t) for t in ("<img>", "</img>", "<imgpad>"))
        i = 0
        while i < len(ids):
            if self.vl and ids[i] == start and end in ids[i + 1 :]:
                e = ids.index(end, i + 1)
                content = [b for b in ids[i + 1 : e] if b != pad]
                span = [] if skip_special_tokens else ["<img>"]
                span.append(bytes(b for b in content if 0 <= b < 256))
                tokens += span + ([] if skip_special_tokens else ["</img>"])
                i = e + 1
                continue
            if not (skip_special_tokens and ids[i] >= self.eod_id):
                tokens.append(self._convert_id_to_token(ids[i]))
            i += 1
        old, self.errors = self.errors, errors or self.errors
        try:
            return self.convert_tokens_to_string(tokens)
        finally:
            self.errors = old

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        out = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILE)
        if os.path.isfile(self.vocab_file) and os.path.abspath(self.vocab_file) != os.path.abspath(out):
            shutil.copyfile(self.vocab_file, out)
        elif not os.path.isfile(out):
            with open(out, "w", encoding="utf-8") as f:
                for tok, rank in sorted(self.mergeable_ranks.items(), key=lambda x: x[1]):
                    f.write(f"{base64.b64encode(tok).decode('ascii')} {rank}\n")
        return (out,)


def load_qwen(path: Path, vl: bool) -> QwenTokenizer:
    """Build from `path/qwen.tiktoken`; eos <|endoftext|> (qwen) or <|im_end|> (qwen-vl), overridable by config."""
    file = path / VOCAB_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no {VOCAB_FILE} in {path}")
    cfg = read_tokenizer_config(path)
    kwargs: dict[str, Any] = {"eos_token": IMEND if vl else ENDOFTEXT}
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        if cfg.get(key) is not None:
            kwargs[key] = token_content(cfg[key])
    for key in ("model_max_length", "padding_side", "chat_template", "errors"):
        if key in cfg:
            kwargs[key] = cfg[key]
    tok = QwenTokenizer(str(file), vl=vl, **kwargs)
    for idx, entry in added_tokens_from_config(cfg):
        tok.add_tokens([AddedToken(entry["content"], special=True, normalized=False)], special_tokens=True)
        if tok.convert_tokens_to_ids(entry["content"]) != idx:
            raise ValueError(f"added token {entry['content']!r} does not land on id {idx}")
    return tok
