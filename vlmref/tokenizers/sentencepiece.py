"""Sentencepiece tokenizer (LLaMA-2, Mistral, Yi, InternLM2), with the prefix semantics a checkpoint is loaded with.

The text is split on added/special tokens (longest match first) and every other chunk is encoded with the
sentencepiece model. ``prefix_policy`` says where a ``▁`` goes in front of a chunk:

* ``sentencepiece`` (default): the models' own slow tokenizers with legacy=True, ``sp.encode(chunk)``, i.e. the
  model's add_dummy_prefix setting (Yi and InternLM2: none; LLaMA-2 / Mistral: every chunk);
* ``every_chunk``: transformers' fast conversion with legacy=True (4.41 ``LlamaConverter``: a ``Prepend('▁')``
  normalizer, whatever the model's add_dummy_prefix says): ``▁`` before every chunk, spaces as ``▁``;
* ``first_chunk``: the fast conversion with legacy=False (``Metaspace(prepend_scheme='first')``): ``▁`` only before
  a chunk at the very start of the text, and not when that chunk already starts with a space.

    >>> yi = load_sentencepiece(folder, prefix_policy='every_chunk')   # ms-swift 2.2.0's Yi-VL tokenizer
    >>> yi.encode('This is', add_special_tokens=False)                 # doctest: +SKIP
    [1117, 620]                                                        # '▁This' '▁is' (sentencepiece: 'This')
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from transformers import AddedToken
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

from ..noise import drop_sentencepiece_nul_piece_warning
from .config import added_tokens_from_config, read_tokenizer_config, token_content

_DEFAULTS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None}
PREFIX_POLICIES = ("sentencepiece", "every_chunk", "first_chunk")


class SentencePieceTokenizer(SentencePieceBackend):
    """transformers slow tokenizer over a `tokenizer.model`; always legacy (raw `sp.encode` per chunk)."""

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str, add_bos_token: bool = True, add_eos_token: bool = False,
                 prefix_policy: str = "sentencepiece", **kwargs):
        if prefix_policy not in PREFIX_POLICIES:
            raise ValueError(f"prefix_policy must be one of {PREFIX_POLICIES}, got {prefix_policy!r}")
        self.prefix_policy = prefix_policy
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

    def tokenize(self, text: str, **kwargs) -> list[str]:
        if self.prefix_policy == "sentencepiece" or kwargs.get("split_special_tokens"):
            return super().tokenize(text, **kwargs)
        return self.convert_ids_to_tokens(self.encode_plain(text))

    def _encode_chunk(self, chunk: str, at_start: bool) -> list[int]:
        """Ids of one chunk between added tokens under ``prefix_policy``."""
        if not chunk:
            return []
        policy = self.prefix_policy
        if policy == "sentencepiece":
            return self.sp_model.encode(chunk)
        if policy == "every_chunk" or (at_start and not chunk.startswith(" ")):
            chunk = " " + chunk
        return self._encode_no_dummy_prefix(chunk)

    def _encode_no_dummy_prefix(self, text: str) -> list[int]:
        """``sp.encode`` without the model's dummy ``▁`` (a leading space of ``text`` becomes the ``▁``), as the fast
        tokenizer's Metaspace does: the same model with ``add_dummy_prefix`` off. (Encoding ``unk + text`` and
        dropping the unk's pieces, as transformers' slow legacy=False tokenizer does, goes wrong when the unk's
        last piece merges with the text: vicuna's ``<unk>,`` loses the comma.)"""
        return self._sp_without_dummy_prefix().encode(text)

    def _sp_without_dummy_prefix(self):
        if getattr(self, "_sp_plain", None) is None:
            proto_bytes = self.sp_model.serialized_model_proto()
            if not proto_bytes or not self.sp_model.encode("a", out_type=str)[0].startswith("\u2581"):
                self._sp_plain = self.sp_model  # no dummy prefix to remove
            else:
                import sentencepiece as spm
                from sentencepiece import sentencepiece_model_pb2

                proto = sentencepiece_model_pb2.ModelProto()
                proto.ParseFromString(proto_bytes)
                proto.normalizer_spec.add_dummy_prefix = False
                plain = spm.SentencePieceProcessor()
                with drop_sentencepiece_nul_piece_warning():
                    plain.LoadFromSerializedProto(proto.SerializeToString())
                self._sp_plain = plain
        return self._sp_plain

    def encode_plain(self, text: str) -> list[int]:
        """``encode(text, add_special_tokens=False)`` without transformers' per-call overhead (same ids): the text
        is split on the added tokens (longest first) and each other chunk is ``sp.encode``-d to ids. Falls back to
        ``encode`` when an added token strips whitespace or shadows a sentencepiece piece with another id."""
        plan = self._plain_plan()
        if plan is None:
            if self.prefix_policy != "sentencepiece":
                raise ValueError(f"prefix_policy {self.prefix_policy!r} needs added tokens that do not strip spaces")
            return self.encode(text, add_special_tokens=False)
        pattern, ids = plan
        if pattern is None:
            return self._encode_chunk(text, True)
        out: list[int] = []
        pos = 0
        for match in pattern.finditer(text):
            if match.start() > pos:
                out += self._encode_chunk(text[pos : match.start()], pos == 0)
            out.append(ids[match.group()])
            pos = match.end()
        if pos < len(text):
            out += self._encode_chunk(text[pos:], pos == 0)
        return out

    def _plain_plan(self):
        key = len(self._added_tokens_decoder)
        cached = getattr(self, "_plain_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = None
        tokens = list(self._added_tokens_decoder.items())
        plain = all(not (t.lstrip or t.rstrip or t.single_word) for _, t in tokens)
        unk = self.sp_model.unk_id()
        shadowed = any(self.sp_model.piece_to_id(t.content) not in (unk, i) for i, t in tokens)
        if plain and not shadowed:
            ids = {t.content: i for i, t in tokens}
            names = sorted(ids, key=len, reverse=True)
            plan = (re.compile("|".join(map(re.escape, names))) if names else None, ids)
        self._plain_cache = (key, plan)
        return plan

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


def load_sentencepiece(path: Path, prefix_policy: str = "sentencepiece") -> SentencePieceTokenizer:
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
    with drop_sentencepiece_nul_piece_warning():  # InternLM2's tokenizer.model: "Piece at index 354 is a null ..."
        deferred = _defer_recorded_specials(model, cfg, kwargs)
        tok = SentencePieceTokenizer(str(model), prefix_policy=prefix_policy, **kwargs)
    _restore_added_tokens(tok, cfg)
    for key, content in deferred.items():
        setattr(tok, key, content)
    return tok


def _defer_recorded_specials(model: Path, cfg: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, str]:
    """Special tokens (bos/eos/pad) that are not sentencepiece pieces but have a recorded id in
    ``added_tokens_decoder``: left out of the constructor (which would append them at the next free id, e.g.
    llava-v1.6-34b-hf's ``<pad>`` taking 64000, ``<image>``'s id) and set once the added tokens are restored."""
    import sentencepiece as spm

    recorded = {entry["content"] for _, entry in added_tokens_from_config(cfg)}
    sp = spm.SentencePieceProcessor(model_file=str(model))
    deferred: dict[str, str] = {}
    for key in ("bos_token", "eos_token", "pad_token"):
        content = kwargs.get(key)
        if content in recorded and sp.piece_to_id(content) == sp.unk_id() and content != sp.id_to_piece(sp.unk_id()):
            deferred[key] = kwargs.pop(key)
            kwargs[key] = None
    return deferred


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
