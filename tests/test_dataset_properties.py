"""Hypothesis properties of the dataset layer (CI profile: derandomised, see conftest.py).

1. The same conversation written in every row format (and as CSV cells) normalises to the same Sample.
2. Normalising is idempotent: Sample -> row -> Sample changes nothing.
3. Validation passes exactly when the model's documented image/turn rules hold (rules restated here from the seeds).
4. Labels never supervise a prompt token; len(input_ids) == len(labels); image positions are never supervised.
5. truncation_left never leaves part of an image span.
6. Special-token text typed by a user cannot create an image placeholder or a role marker.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st
from stand_in import golden_specials

from vlmref.datasets.formats import RawRow, normalise_row
from vlmref.datasets.rules import RowChecker
from vlmref.datasets.sample import RowOrigin, Sample
from vlmref.errors import DatasetRowError, SequenceTooLongError
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template
from vlmref.templates.media import IMAGE_SENTINEL
from vlmref.testing.tiny_tokenizer import TinyTokenizer

ORIGIN = RowOrigin("gen.jsonl", 1, 0)
MODEL_TYPES = MODELS.names()
# Text without tags or markers: letters, digits, CJK, emoji, whitespace.
TEXT = st.text(st.sampled_from(list("abcxyz XYZ019\n\t,.?!你好世界😀é")), min_size=1, max_size=20).filter(str.strip)
IMAGES = st.sampled_from(["/data/a.png", "/data/b.jpg", "http://127.0.0.1/c.png"])


def template_for(model_type: str, **kw):
    template_type = MODELS.get(model_type).template
    ids, bos, eos, pad = golden_specials(template_type)
    return get_template(template_type, TinyTokenizer(ids, bos=bos, eos=eos, pad=pad),
                        vision_tokens=5, image_tokens=7, **kw)


@st.composite
def conversations(draw) -> dict[str, Any]:
    turns = draw(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=3))
    return {"system": draw(st.none() | TEXT), "turns": turns, "images": draw(st.lists(IMAGES, max_size=3))}


def as_formats(conv: dict[str, Any]) -> dict[str, dict[str, Any]]:
    *history, (query, response) = conv["turns"]
    qr = {"query": query, "response": response, "history": [list(t) for t in history], "images": conv["images"]}
    if conv["system"] is not None:
        qr["system"] = conv["system"]
    chat = [{"from": "system", "value": conv["system"]}] if conv["system"] is not None else []
    for q, r in conv["turns"]:
        chat += [{"from": "user", "value": q}, {"from": "assistant", "value": r}]
    gpt = [{**t, "from": {"user": "human", "assistant": "gpt"}.get(t["from"], t["from"])} for t in chat]
    messages = [{"role": t["from"], "content": t["value"]} for t in chat]
    csv_cells = {k: (json.dumps(v) if isinstance(v, list) else v) for k, v in qr.items()}  # what a CSV reader yields
    return {
        "query_response": qr,
        "csv": csv_cells,
        "conversations": {"conversations": chat, "images": conv["images"]},
        "human_gpt": {"conversations": gpt, "images": conv["images"]},
        "messages": {"messages": messages, "images": conv["images"]},
    }


def normalise(data: dict[str, Any], inline: bool = False) -> Sample:
    return normalise_row(RawRow(ORIGIN, data), inline_images=inline)


@given(conversations())
def test_every_format_normalises_to_the_same_sample(conv) -> None:
    samples = {name: normalise(row) for name, row in as_formats(conv).items()}
    first = samples["query_response"]
    assert all(sample == first for sample in samples.values()), samples
    assert first.response == conv["turns"][-1][1] and len(first.history) == len(conv["turns"]) - 1


@given(conversations(), st.booleans())
def test_normalising_twice_changes_nothing(conv, inline) -> None:
    once = normalise(as_formats(conv)["messages"], inline)
    example = once.to_example()
    twice = normalise({k: v for k, v in example.items() if v is not None}, inline)
    assert twice == once


# ---- 3. validation passes exactly when the documented rules hold -----------------------------------------------------
def documented_rules_hold(model_type: str, per_turn: list[int]) -> bool:
    """The seeds' rules, restated: CogVLM one image per conversation; LLaVA-NeXT single turn with one image;
    Yi-VL at most one image per turn; Qwen-VL and XComposer2 anything."""
    total = sum(per_turn)
    if model_type.startswith("cogvlm"):
        return total == 1
    if model_type.startswith(("llava", "llama3-llava")):
        return len(per_turn) == 1 and total == 1
    if model_type.startswith("yi-vl"):
        return all(n <= 1 for n in per_turn)
    return True


@given(st.sampled_from(MODEL_TYPES), st.lists(st.integers(0, 2), min_size=1, max_size=3), st.data())
def test_validation_passes_iff_rules_hold(model_type, per_turn, data) -> None:
    texts = [("<image>" * n) + data.draw(TEXT) for n in per_turn]
    images = [data.draw(IMAGES) for _ in range(sum(per_turn))]
    replies = [data.draw(TEXT) for _ in per_turn]
    sample = Sample(texts[-1], replies[-1], tuple(zip(texts[:-1], replies[:-1], strict=True)), None, tuple(images), ORIGIN)
    try:
        RowChecker(model_type).check(sample)
        passed = True
    except DatasetRowError:
        passed = False
    assert passed == documented_rules_hold(model_type, per_turn)


# ---- 4/5. labels and truncation on encoded samples -------------------------------------------------------------------
def valid_sample(model_type: str, data) -> Sample:
    rules = MODELS.get(model_type).rules
    n_turns = 1 if not rules.multi_turn else data.draw(st.integers(1, 3))
    queries = ["QQ " + data.draw(TEXT) for _ in range(n_turns)]  # "QQ" marks prompt text; replies never contain it
    replies = [data.draw(TEXT).replace("Q", "q") for _ in range(n_turns)]
    images: list[Any] = []
    if rules.min_images or data.draw(st.booleans()):
        turn = data.draw(st.integers(0, n_turns - 1))
        queries[turn] = "<image>" + queries[turn]
        images.append(data.draw(IMAGES.filter(lambda m: not m.startswith("http"))))
    return Sample(queries[-1], replies[-1], tuple(zip(queries[:-1], replies[:-1], strict=True)), None, tuple(images), ORIGIN)


def image_positions(enc: dict[str, Any]) -> set[int]:
    return {p for start, n in enc["image_spans"] for p in range(start, start + n)}


SIZED = {"llava", "llama3-llava", "internlm-xcomposer2_5"}  # image token counts read the image size: not generated here
FIXED_COUNT_MODELS = [m for m in MODEL_TYPES if not m.startswith(tuple(SIZED))]


@given(st.sampled_from(FIXED_COUNT_MODELS), st.data())
def test_labels_never_supervise_the_prompt(model_type, data) -> None:
    sample = valid_sample(model_type, data)
    RowChecker(model_type).check(sample)
    template = template_for(model_type)
    enc = template.encode(sample.to_example())
    ids, labels = enc["input_ids"], enc["labels"]
    assert len(ids) == len(labels)
    assert all(label in (-100, tok) for tok, label in zip(ids, labels, strict=True))
    assert not any(labels[p] != -100 for p in image_positions(enc))
    supervised = template.tokenizer.decode([t for t in labels if t != -100 and t >= 0])
    assert "QQ" not in supervised
    for _, reply in [*sample.history, (sample.query, sample.response)]:
        assert reply in supervised


@given(st.sampled_from(FIXED_COUNT_MODELS), st.data())
def test_truncation_left_never_cuts_an_image_span(model_type, data) -> None:
    sample = valid_sample(model_type, data)
    assume(sample.images)
    full = template_for(model_type).encode(sample.to_example())
    max_length = data.draw(st.integers(1, len(full["input_ids"])))
    enc = template_for(model_type, max_length=max_length, truncation_strategy="truncation_left").encode(sample.to_example())
    assert len(enc["input_ids"]) <= max_length and len(enc["input_ids"]) == len(enc["labels"])
    assert len(enc["image_spans"]) == len(enc["images"])
    inside = image_positions(enc)
    assert all(p < len(enc["input_ids"]) for p in inside)
    # no orphaned image position outside a whole span after the cut
    if "token_type_ids" in enc:  # CogVLM marks vision positions with token_type_ids
        assert {i for i, t in enumerate(enc["token_type_ids"]) if t} == inside
    else:
        assert {i for i, t in enumerate(enc["input_ids"]) if t == IMAGE_SENTINEL} <= inside


# ---- 6. typed special tokens ---------------------------------------------------------------------------------------
def special_counts(model_type: str, enc: dict[str, Any]) -> Counter:
    template_type = MODELS.get(model_type).template
    ids, *_ = golden_specials(template_type)
    by_id = {v: k for k, v in ids.items()}
    return Counter(by_id[t] for t in enc["input_ids"] if t in by_id) + Counter(
        "<sentinel>" for t in enc["input_ids"] if t == IMAGE_SENTINEL)


@given(st.sampled_from(FIXED_COUNT_MODELS), st.data())
def test_typed_special_tokens_stay_text(model_type, data) -> None:
    template_type = MODELS.get(model_type).template
    ids, bos, eos, pad = golden_specials(template_type)
    allowed_markup = set(template_for(model_type).meta.user_markup)
    specials = sorted(set(ids) - allowed_markup | {"<image>"})
    pieces = st.lists(st.sampled_from(specials) | TEXT, min_size=1, max_size=6).map("".join)
    clean = valid_sample(model_type, data)
    typed_query = data.draw(pieces)
    typed_reply = data.draw(pieces)
    dirty = Sample(clean.query + typed_query, clean.response + typed_reply, clean.history, clean.system,
                   clean.images, ORIGIN)
    try:
        enc_dirty = template_for(model_type).encode(dirty.to_example())
    except Exception as err:  # an <image> tag typed into a sample with images is an explicit tag: count mismatch
        assert "<image>" in typed_query or "<image>" in typed_reply, err
        return
    enc_clean = template_for(model_type).encode(clean.to_example())
    assert special_counts(model_type, enc_dirty) == special_counts(model_type, enc_clean)
    assert len(enc_dirty["image_spans"]) == len(enc_clean["image_spans"])


def test_sequence_too_long_is_the_only_length_error() -> None:
    """Sanity check of the helpers above: a too-small max_length under delete raises SequenceTooLongError."""
    sample = Sample("<image>q", "r", images=("/data/a.png",), origin=ORIGIN)
    try:
        template_for("cogvlm-17b-instruct", max_length=3).encode(sample.to_example())
    except SequenceTooLongError as err:
        assert err.image_tokens == 5
    else:
        raise AssertionError("expected SequenceTooLongError")
