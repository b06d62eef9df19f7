"""StreamDecoder: deltas concatenate to the non-streamed response, never split a character or show a partial stop word."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vlmref.llm.streaming import REPLACEMENT, StreamDecoder, decode_response
from vlmref.models.loader import get_model_tokenizer, shared_tokenizer_folder

MODEL_TYPES = ["qwen-vl-chat", "yi-vl-6b-chat", "llama3-llava-next-8b", "internlm-xcomposer2-7b-chat",
               "llava1d6-mistral-7b-instruct", "cogvlm-17b-instruct"]
TEXT = st.text(st.sampled_from(list("ab c\n你好世界😀🚀éü<|>_imend")), max_size=30)


@pytest.fixture(scope="module")
def tokenizers(tokenizers_root):
    return {m: get_model_tokenizer(m, load_model=False, model_id_or_path=str(shared_tokenizer_folder(m)))[1]
            for m in MODEL_TYPES}


def stream(tokenizer, ids, stops):
    decoder = StreamDecoder(tokenizer, stops)
    parts = [decoder.push(i) for i in ids]
    return parts, decoder.flush(), decoder


@pytest.mark.real_tokenizer
@given(st.sampled_from(MODEL_TYPES), TEXT, st.booleans())
def test_stream_equals_non_stream(tokenizers, model_type, text, with_stop) -> None:
    tok = tokenizers[model_type]
    stops = ["<|im_end|>", tok.eos_token]
    if with_stop:
        text += "<|im_end|>after"
    ids = tok.encode(text, add_special_tokens=False)
    parts, tail, decoder = stream(tok, ids, stops)
    assert "".join(parts) + tail == decode_response(tok, ids, stops) == decoder.response
    assert not any(REPLACEMENT in p for p in parts)  # no half character is ever shown mid-stream
    full = tok.decode(ids)  # the text without any cut: no shown prefix may reach into a stop word's occurrence
    starts = [full.find(w) for w in stops if w and w in full]
    limit = min(starts) if starts else len(full)
    shown = 0
    for part in parts:
        shown += len(part)
        assert shown <= limit
    assert "<|im_end|>" not in decoder.response


@pytest.mark.real_tokenizer
def test_byte_fallback_emoji_is_held_until_complete(tokenizers) -> None:
    tok = tokenizers["yi-vl-6b-chat"]  # SentencePiece byte fallback: 😀 is 4 byte tokens
    ids = tok.encode("😀", add_special_tokens=False)
    assert len(ids) > 1
    parts, tail, _ = stream(tok, ids, [])
    assert parts[:-1] == [""] * (len(ids) - 1) and parts[-1].endswith("😀") and tail == ""


def test_partial_stop_word_is_released_when_the_stream_ends() -> None:
    class Chars:
        def decode(self, ids, skip_special_tokens=False):
            return "".join(map(chr, ids))

    parts, tail, decoder = stream(Chars(), [ord(c) for c in "ok<|im_"], ["<|im_end|>"])
    assert "".join(parts) == "ok" and tail == "<|im_" and decoder.response == "ok<|im_"
    parts, tail, decoder = stream(Chars(), [ord(c) for c in "ok<|im_end|>more"], ["<|im_end|>"])
    assert "".join(parts) + tail == "ok" and decoder.stopped
