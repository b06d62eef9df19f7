"""Slow, legacy sentencepiece tokenizer (LLaMA-2, Mistral, Yi, InternLM2).

Semantics of the models' own slow tokenizers with legacy=True: the text is split on added/special tokens
(longest match first) and every other chunk is encoded with the raw sentencepiece model, `sp.encode(chunk)`,
which applies the model's own add_dummy_prefix setting. No `▁` is added or stripped here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AddedToken
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

from .loader import added_tokens_from_config, read_tokenizer_config, token_content

_DEFAULTS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None}


class SentencePieceTokenizer(SentencePieceBackend):
    """transformers slow tokenizer over a `tokenizer.model`; always legacy (raw `sp.encode` per chunk)."""

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str, add_bos_token: bool = True, add_eos_token: bool = False, **kwargs):
        kwargs["legacy"] = True
        for key, default in _DEFAULTS.items():
            kwargs.setdefault(key, default)
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        pattern = {(True, True): "bos_eos", (True, False): "bos", (False, True): "eos"}.get(
            (bool(add_bos_token), bool(add_eos_token)), "none"
        )
        kwargs.setdefault("special_tokens_pattern", pattern)
        self.add_bos_token = bool(add_bos_token)
        self.add_eos_token = bool(add_eos_token)
        super().__init__(vocab_file=vocab_file, **kwargs)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return self.sp_model.encode(text, out_type=str)

    def _decode(self, token_ids, skip_special_tokens: bool = False, **kwargs) -> str:
        """Runs of model ids go through `sp.decode`; added/special tokens are emitted verbatim."""
        ids = [token_ids] if isinstance(token_ids, int) else [int(i) for i in token_ids]
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            if i in skip:
                continue
            if i in self._added_tokens_decoder:
                if run:
                    out.append(self.sp_model.decode(run))
                    run = []
                out.append(self._added_tokens_decoder[i].content)
            else:
                run.append(i)
        if run:
            out.append(self.sp_model.decode(run))
        return "".join(out)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self.sp_model.decode_pieces(list(tokens))

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers drops add_bos/eos_token from the saved config; keep them so a reload is identical.
        self.init_kwargs["vlmref_add_bos_token"] = self.add_bos_token
        self.init_kwargs["vlmref_add_eos_token"] = self.add_eos_token
        return super().save_pretrained(save_directory, *args, **kwargs)


def load_sentencepiece(path: Path) -> SentencePieceTokenizer:
    """Build from `path/tokenizer.model` plus tokenizer_config.json / special_tokens_map.json when present."""
    model = path / "tokenizer.model"
    if not model.is_file():
        raise FileNotFoundError(f"no tokenizer.model in {path}")
    cfg = read_tokenizer_config(path)
    kwargs: dict[str, Any] = {}
    for key, default in _DEFAULTS.items():
        kwargs[key] = token_content(cfg[key]) if key in cfg else default
    kwargs["add_bos_token"] = cfg.get("vlmref_add_bos_token", cfg.get("add_bos_token", True))
    kwargs["add_eos_token"] = cfg.get("vlmref_add_eos_token", cfg.get("add_eos_token", False))
    for key in ("clean_up_tokenization_spaces", "model_max_length", "padding_side", "chat_template"):
        if key in cfg:
            kwargs[key] = cfg[key]
    tok = SentencePieceTokenizer(str(model), **kwargs)
    _restore_added_tokens(tok, cfg)
    return tok


def _restore_added_tokens(tok: SentencePieceTokenizer, cfg: dict[str, Any]) -> None:
    """Re-add `added_tokens_decoder` entries in id order and check each lands on its recorded id."""
    for idx, entry in added_tokens_from_config(cfg):
        content = entry["content"]
        if content in tok.get_added_vocab():
            continue
        token = AddedToken(
            content,
            single_word=entry.get("single_word", False),
            lstrip=entry.get("lstrip", False),
            rstrip=entry.get("rstrip", False),
            normalized=entry.get("normalized", not entry.get("special", False)),
            special=entry.get("special", False),
        )
        tok.add_tokens([token], special_tokens=bool(entry.get("special", False)))
        got = tok.convert_tokens_to_ids(content)
        if got != idx:
            raise ValueError(f"added token {content!r} got id {got}, config says {idx}")
