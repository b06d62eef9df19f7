"""Incremental detokenization for streamed generation.

``StreamDecoder`` turns generated token ids, fed one step at a time, into text deltas that

* never split a multi-byte character (a trailing U+FFFD from an incomplete UTF-8 sequence is held back);
* never show part of a stop word (``<|im_`` is held back while it could still become ``<|im_end|>``), and stop the
  text at the first complete stop word;
* concatenate exactly to the non-streamed response (the final ``flush()`` releases what was held back).

>>> dec = StreamDecoder(tokenizer, stop_words=["<|im_end|>"])  # doctest: +SKIP
>>> [dec.push(t) for t in ids]; dec.flush()                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

REPLACEMENT = "\ufffd"


class StreamDecoder:
    """Feed ids with ``push``; each call returns the new, safe-to-show text. ``flush`` ends the stream."""

    def __init__(self, tokenizer: Any, stop_words: Sequence[str] = (), skip_special_tokens: bool = False) -> None:
        self.tokenizer = tokenizer
        self.stop_words = [w for w in stop_words if w]
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self.text = ""  # decoded text of self.ids, cut at a stop word once one appears
        self.emitted = 0  # characters of self.text already returned
        self.stopped = False

    def _decode(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special_tokens)

    def push(self, token_ids: int | Iterable[int]) -> str:
        if self.stopped:
            return ""
        self.ids += [token_ids] if isinstance(token_ids, int) else list(token_ids)
        self.text = self._decode()
        cut = self._stop_index(self.text)
        if cut is not None:
            self.text = self.text[:cut]
            self.stopped = True
            return self._release(len(self.text))
        return self._release(self._safe_end(self.text))

    def flush(self) -> str:
        """Everything not yet returned (the stream ended): held-back partial stop words and a final U+FFFD included."""
        end = len(self.text)
        return self._release(end)

    @property
    def response(self) -> str:
        return self.text

    def _release(self, end: int) -> str:
        if end <= self.emitted:
            return ""
        delta = self.text[self.emitted : end]
        self.emitted = end
        return delta

    def _stop_index(self, text: str) -> int | None:
        hits = [text.find(w, max(0, self.emitted - len(w))) for w in self.stop_words]
        hits = [h for h in hits if h >= 0]
        return min(hits) if hits else None

    def _safe_end(self, text: str) -> int:
        """How much of ``text`` can be shown now."""
        end = len(text)
        while end > self.emitted and text[end - 1] == REPLACEMENT:  # an unfinished multi-byte character
            end -= 1
        for word in self.stop_words:  # hold back a suffix that may grow into a stop word
            for k in range(min(len(word) - 1, end - self.emitted), 0, -1):
                if text[end - k : end] == word[:k]:
                    end -= k
                    break
        return max(end, self.emitted)


def decode_response(tokenizer: Any, ids: Sequence[int], stop_words: Sequence[str] = ()) -> str:
    """The non-streamed response: decode once, cut at the first stop word (what the stream concatenates to)."""
    decoder = StreamDecoder(tokenizer, stop_words)
    decoder.push(list(ids))
    return decoder.response
