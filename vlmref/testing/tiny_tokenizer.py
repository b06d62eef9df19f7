"""A byte-level stand-in tokenizer for testing template logic without the real tokenizer files.

Special tokens keep the ids the real tokenizer gives them (the golden cases record them); every other byte b is
id ``BYTE_OFFSET + b``. It splits on special tokens longest-first, as HF tokenizers do with added tokens. ``byte_offset`` moves the byte ids
(e.g. ``300`` keeps every id inside a real vocabulary, for feeding tiny models; no special id lies in 300-555).

>>> tok = TinyTokenizer({'<s>': 1, '</s>': 2}, bos='<s>', eos='</s>')
>>> tok.encode('<s>hi', add_special_tokens=False)
[1, 1000104, 1000105]
"""

from __future__ import annotations

import re

BYTE_OFFSET = 1_000_000


class TinyTokenizer:
    def __init__(self, specials: dict[str, int], *, bos: str | None = None, eos: str | None = None, pad: str | None = None,
                 byte_offset: int = BYTE_OFFSET):
        self.specials = dict(specials)
        self.byte_offset = byte_offset
        clash = [k for k, v in self.specials.items() if byte_offset <= v < byte_offset + 256]
        if clash:
            raise ValueError(f"special tokens {clash} fall in the byte id range {byte_offset}..{byte_offset + 255}")
        self._by_id = {v: k for k, v in self.specials.items()}
        self._pattern = (
            re.compile("(" + "|".join(re.escape(s) for s in sorted(self.specials, key=len, reverse=True)) + ")")
            if self.specials
            else None
        )
        self.bos_token, self.eos_token, self.pad_token = bos, eos, pad or eos
        self.unk_token_id = None

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.specials[token]

    @property
    def bos_token_id(self) -> int | None:
        return self._id(self.bos_token)

    @property
    def eos_token_id(self) -> int | None:
        return self._id(self.eos_token)

    @property
    def pad_token_id(self) -> int | None:
        return self._id(self.pad_token)

    def encode(self, text: str, add_special_tokens: bool = False, split_special_tokens: bool = False) -> list[int]:
        ids: list[int] = []
        parts = self._pattern.split(text) if self._pattern and not split_special_tokens else [text]
        in_img: bytearray | None = None
        for part in parts:
            if in_img is not None:  # Qwen-VL rule: <img> + content bytes as ids 0-255 + <imgpad> to 256 + </img>
                if part == "</img>":
                    ids += list(in_img) + [self.specials["<imgpad>"]] * (256 - len(in_img)) + [self.specials[part]]
                    in_img = None
                else:
                    in_img += part.encode("utf-8")
            elif part == "<img>" and "<imgpad>" in self.specials:
                ids.append(self.specials[part])
                in_img = bytearray()
            elif part in self.specials:
                ids.append(self.specials[part])
            else:
                ids += [self.byte_offset + b for b in part.encode("utf-8")]
        if add_special_tokens and self.bos_token_id is not None:
            ids.insert(0, self.bos_token_id)
        return ids

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        out, buf = [], bytearray()
        for i in ids:
            if self.byte_offset <= i < self.byte_offset + 256:
                buf.append(i - self.byte_offset)
                continue
            out.append(buf.decode("utf-8", errors="replace"))
            buf.clear()
            if not skip_special_tokens and i in self._by_id:
                out.append(self._by_id[i])
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self.specials.get(token)

    def __call__(self, text: str, add_special_tokens: bool = False, return_attention_mask: bool = False):
        return {"input_ids": self.encode(text, add_special_tokens=add_special_tokens)}
