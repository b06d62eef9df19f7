"""Property tests of Template.encode for every template type, against a small independent reference renderer.

The reference (``_reference``) re-derives ms-swift 2.2.0's layout from the spec (section 1.2): image tags added per
``infer_media_type``, system resolution, prefix / prompt / response / chat_sep (only before a non-empty query) /
suffix, an element supervised iff it is a response or equals a suffix element. Encodings are checked against it
through the byte-level TinyTokenizer: the ids outside image spans decode to the reference text, and the supervised
ids decode to the reference's supervised text.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stand_in import all_template_specials

from vlmref.errors import SequenceTooLongError
from vlmref.models.internlm_xcomposer2.image_tokens import xcomposer2_5_image_tokens
from vlmref.models.llava_next.image_tokens import llava_next_image_tokens
from vlmref.templates import TEMPLATES, get_template
from vlmref.templates.media import IMAGE_SENTINEL
from vlmref.testing.tiny_tokenizer import TinyTokenizer

# Special-token ids as the real tokenizers give them, from the golden cases (tests/stand_in.py).
SPECIALS = all_template_specials()
TEMPLATE_TYPES = sorted(SPECIALS)

# What remains of an <image> tag once its span positions are removed (the placeholder's text outside the span).
VISIBLE_AFTER_IMAGE = {"llava_next": "\n", "yi_vl": "\n"}
IMAGE_TAG = "<image>"


def _tok(template_type: str) -> TinyTokenizer:
    ids, bos, eos, pad = SPECIALS[template_type]
    return TinyTokenizer(ids, bos=bos, eos=eos, pad=pad)


TOKENIZERS = {t: _tok(t) for t in TEMPLATE_TYPES}


class Img:
    """Stands in for a PIL image: only ``size`` (w, h) and ``mode`` are read."""

    mode = "RGB"

    def __init__(self, w: int, h: int) -> None:
        self.size = (w, h)

    def __repr__(self) -> str:
        return f"Img{self.size}"


# ---- strategies ---------------------------------------------------------------------------------------------------


def _forbidden(template_type: str) -> tuple[str, ...]:
    return (*SPECIALS[template_type][0], IMAGE_TAG, "<img>", "</img>", "{{")


_chars = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(list("你好世界浦语😀🚀👍🏽 \t\n\r\u3000\u00a0<>/[]|#:")),
)


def texts(template_type: str, min_size: int = 0):
    bad = _forbidden(template_type)
    return st.text(_chars, min_size=min_size, max_size=12).filter(lambda s: not any(m in s for m in bad))


_side = st.integers(min_value=40, max_value=1400)
_images = st.builds(Img, _side, _side)
_paths = st.text(st.sampled_from(list("abcxyz019_-/.猫")), min_size=1, max_size=16)


@st.composite
def examples(draw, template_type: str) -> dict[str, Any]:
    meta = TEMPLATES.get(template_type)
    text = texts(template_type)
    n_hist = draw(st.integers(0, 3))
    ex: dict[str, Any] = {
        "query": draw(text),
        "response": draw(st.one_of(st.none(), text)),
        "history": [[draw(text), draw(text)] for _ in range(n_hist)],
    }
    systems = [st.none(), st.just("")] + ([texts(template_type, min_size=1)] if meta.supports_system else [])
    ex["system"] = draw(st.one_of(*systems))
    media = meta.media
    if media == "text":
        pass
    elif meta.infer_media_type == "round":
        img = _images if media == "llava_next" else _paths
        ex["images"] = [draw(st.one_of(st.none(), img)) for _ in range(n_hist + 1)]
    elif media == "cogvlm":
        ex["images"] = draw(st.lists(_images, max_size=1))
    elif media == "qwen_vl":
        ex["images"] = draw(st.lists(_paths, max_size=3))
    elif media == "xcomposer2_5":  # large enough that hd_num 24 (one image) and 6 (several) give different grids
        ex["images"] = draw(st.lists(st.builds(Img, _side, st.integers(40, 2400)), max_size=2))
    elif media == "xcomposer2":
        if draw(st.booleans()):
            ex["images"] = draw(st.lists(_paths, max_size=3))
        else:  # inline <img>path</img> tags inside random user turns
            for turn in [*ex["history"], None]:
                for _ in range(draw(st.integers(0, 2))):  # never inside a tag already there (that is malformed)
                    tag = f"<img>{draw(_paths)}</img>"
                    if turn is None:
                        ex["query"] = _insert(ex["query"], tag, draw(st.sampled_from(_outside_tags(ex["query"]))))
                    else:
                        turn[0] = _insert(turn[0], tag, draw(st.sampled_from(_outside_tags(turn[0]))))
    else:  # pragma: no cover - a new media step needs a strategy here
        raise AssertionError(f"no example strategy for media {media!r}")
    return ex


def _insert(text: str, tag: str, at: int) -> str:
    return text[:at] + tag + text[at:]


def _outside_tags(text: str) -> list[int]:
    """Positions of ``text`` not inside an ``<img>...</img>`` it already holds."""
    import re

    inside = {p for m in re.finditer(r"<img>.*?</img>", text) for p in range(m.start() + 1, m.end())}
    return [p for p in range(len(text) + 1) if p not in inside]


# ---- the reference ------------------------------------------------------------------------------------------------


def _reference(template_type: str, example: dict[str, Any]) -> tuple[str, str, list[Any]]:
    """(visible text = decode of the ids outside image spans, supervised text, images in order)."""
    import re

    meta = TEMPLATES.get(template_type)
    tok = TOKENIZERS[template_type]
    query = example["query"]
    response = example["response"]
    history = [list(t) for t in example.get("history") or []]
    images = list(example.get("images") or [])
    if meta.media.startswith("xcomposer2"):
        inline = re.compile(r"<img>(.+?)</img>")
        found = [p for q in [*[h[0] for h in history], query] for p in inline.findall(q)]
        if found:
            history = [[inline.sub(IMAGE_TAG, h[0]), h[1]] for h in history]
            query = inline.sub(IMAGE_TAG, query)
            images = found
    if any(images) and IMAGE_TAG not in "\n".join([h[0] for h in history] + [query]):
        if meta.infer_media_type == "round":
            for turn, image in zip(history, images[: len(history)], strict=True):
                if image:
                    turn[0] = IMAGE_TAG + turn[0]
            if images[-1]:
                query = IMAGE_TAG + query
        else:
            tags = IMAGE_TAG * len([m for m in images if m])
            if history:
                history[0][0] = tags + history[0][0]
            else:
                query = tags + query
    images = [m for m in images if m]

    system = example.get("system")
    system = meta.default_system if system is None else (system or None)

    parts: list[tuple[str, bool]] = []
    suffix_values = [_value(e, tok) for e in meta.suffix]

    def add(element, loss: bool | None = None, **subs: str) -> None:
        value = _value(element, tok)
        for key, sub in subs.items():
            value = value.replace(key, sub)
        parts.append((value, (value in suffix_values) if loss is None else loss))

    for element in meta.prefix if system is None else meta.system_prefix:
        add(element, **({"{{SYSTEM}}": system} if system is not None else {}))
    rounds = [*history, [query, response]]
    for i, (q, r) in enumerate(rounds):
        if not (q or r):
            continue
        for element in meta.prompt:
            add(element, **{"{{QUERY}}": q})
        if i < len(rounds) - 1:
            parts.append((r, True))
            if rounds[i + 1][0]:
                for element in meta.chat_sep:
                    add(element)
        elif r is not None:
            parts.append((r, True))
            for element in meta.suffix:
                add(element, loss=True)
    visible = "".join(p for p, _ in parts).replace(
        IMAGE_TAG, VISIBLE_AFTER_IMAGE.get(meta.media, "") if images else IMAGE_TAG
    )
    supervised = "".join(p for p, loss in parts if loss)
    return visible, supervised, images


def _value(element, tok: TinyTokenizer) -> str:
    """An element as decoded text: id elements (``('bos_token_id',)``) become their tokens."""
    if isinstance(element, str):
        return element
    return tok.decode([getattr(tok, x) if isinstance(x, str) else x for x in element])


def _expected_span_lengths(template_type: str, images: list[Any]) -> list[int]:
    media = TEMPLATES.get(template_type).media
    if media == "llava_next":
        return [llava_next_image_tokens(im.size[1], im.size[0]) for im in images]
    if media == "xcomposer2_5":
        hd = 24 if len(images) <= 1 else 6
        return [xcomposer2_5_image_tokens(im.size[1], im.size[0], hd_num=hd) for im in images]
    if not images:
        return []
    return [{"cogvlm": 1227, "qwen_vl": 258, "yi_vl": 1024, "xcomposer2": 256}[media]] * len(images)


def _check_spans_and_extras(template_type: str, enc: dict[str, Any], tok: TinyTokenizer) -> None:
    ids, labels, spans = enc["input_ids"], enc["labels"], enc["image_spans"]
    media = TEMPLATES.get(template_type).media
    assert len(spans) == len(enc["images"])
    in_span = [False] * len(ids)
    prev_end = 0
    for s, n in spans:
        assert n > 0 and s >= prev_end and s + n <= len(ids)  # ordered, disjoint, inside the sequence
        prev_end = s + n
        body = ids[s : s + n]
        if media == "qwen_vl":
            assert body[0] == tok.convert_tokens_to_ids("<img>") and body[-1] == tok.convert_tokens_to_ids("</img>")
            assert len(body) == 258
        else:
            fill = {
                "llava_next": tok.convert_tokens_to_ids("<image>"),
                "cogvlm": tok.pad_token_id,
                "yi_vl": IMAGE_SENTINEL,
                "xcomposer2": IMAGE_SENTINEL,
                "xcomposer2_5": IMAGE_SENTINEL,
            }[media]
            assert body == [fill] * n
        for p in range(s, s + n):
            in_span[p] = True
    if labels is not None:
        assert len(labels) == len(ids)
        for p, (lab, i) in enumerate(zip(labels, ids, strict=True)):
            assert lab == -100 or lab == i
            if in_span[p]:
                assert lab == -100, f"image position {p} supervised"
    for key in ("token_type_ids", "im_mask"):
        if key in enc:
            assert enc[key] == [int(x) for x in in_span], key
    if "image_sizes" in enc:
        assert enc["image_sizes"] == [[im.size[1], im.size[0]] for im in enc["images"]]
    if media not in ("qwen_vl", "cogvlm"):  # the fill id occurs nowhere outside the spans
        outside = [i for i, inside in zip(ids, in_span, strict=True) if not inside]
        assert IMAGE_SENTINEL not in outside
        if media == "llava_next":
            assert tok.convert_tokens_to_ids("<image>") not in outside


# ---- properties ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template_type", TEMPLATE_TYPES)
def test_encode_matches_reference(template_type: str) -> None:
    tok = TOKENIZERS[template_type]
    template = get_template(template_type, tok)

    @settings(max_examples=100)
    @given(example=examples(template_type))
    def check(example: dict[str, Any]) -> None:
        enc = template.encode(example)
        visible, supervised, images = _reference(template_type, example)
        ids, labels = enc["input_ids"], enc["labels"]
        assert (labels is None) == (example["response"] is None)
        _check_spans_and_extras(template_type, enc, tok)
        # images: one span per image, in order, with the family's size
        assert enc["images"] == images  # qwen-vl: the paths read back from the ids; others: the same objects
        assert [n for _, n in enc["image_spans"]] == _expected_span_lengths(template_type, images)
        # text: the ids outside the spans decode to the reference text; the supervised ids to the responses + suffix
        in_span = {p for s, n in enc["image_spans"] for p in range(s, s + n)}
        assert tok.decode([i for p, i in enumerate(ids) if p not in in_span]) == visible
        if labels is not None:
            assert tok.decode([lab for lab in labels if lab != -100]) == supervised
        # the rendered view is the concatenation of the segments, and its text segments tokenize to the ids
        rendered = template.render(example)
        assert rendered.text() == "".join(
            s.value
            if s.kind == "text"
            else (f"⟦image {s.value.index}⟧" if s.kind == "image" else "⟦" + ",".join(map(str, s.value)) + "⟧")
            for s in rendered.segments
        )
        assert [s.value.index for s in rendered.segments if s.kind == "image"] == list(
            range(len([s for s in rendered.segments if s.kind == "image"]))
        )
        assert all(not s.loss for s in rendered.segments if s.kind == "image")
        # supervised segments = responses (history included) + chat_sep/suffix elements equal to a suffix element;
        # for a generation prompt this still holds for the rendered view (labels are None only at encode)
        assert (
            "".join(s.value if s.kind == "text" else tok.decode(list(s.value)) for s in rendered.segments if s.loss)
            == supervised
        )

    check()


@pytest.mark.parametrize("template_type", TEMPLATE_TYPES)
def test_truncation_never_splits_an_image(template_type: str) -> None:
    tok = TOKENIZERS[template_type]
    full_template = get_template(template_type, tok)

    @settings(max_examples=60)
    @given(example=examples(template_type), data=st.data())
    def check(example: dict[str, Any], data) -> None:
        full = full_template.encode(example)
        n = len(full["input_ids"])
        max_length = data.draw(st.integers(1, n + 3), label="max_length")

        delete = get_template(template_type, tok, max_length=max_length)
        if n > max_length:
            with pytest.raises(SequenceTooLongError) as err:
                delete.encode(example)
            assert (err.value.length, err.value.max_length) == (n, max_length)
            assert err.value.image_tokens == sum(k for _, k in full["image_spans"])
        else:
            assert delete.encode(example)["input_ids"] == full["input_ids"]

        enc = get_template(template_type, tok, max_length=max_length, truncation_strategy="truncation_left").encode(
            example
        )
        ids = enc["input_ids"]
        assert len(ids) <= max_length
        start = n - len(ids)
        assert ids == full["input_ids"][start:]  # a suffix of the full encoding
        if full["labels"] is None:
            assert enc["labels"] is None
        else:
            assert enc["labels"] == full["labels"][start:]
        # the cut is at n - max_length, or moved forward to the end of the span it fell into
        naive = max(0, n - max_length)
        if start != naive:
            assert any(s < naive < s + k and start == s + k for s, k in full["image_spans"])
        # every remaining span is whole and is one of the original spans, shifted; its image and extras follow
        kept = [(s, k) for s, k in full["image_spans"] if s >= start]
        assert enc["image_spans"] == [[s - start, k] for s, k in kept]
        kept_idx = [i for i, (s, _) in enumerate(full["image_spans"]) if s >= start]
        assert enc["images"] == [full["images"][i] for i in kept_idx]
        _check_spans_and_extras(template_type, enc, tok)
        for key in ("token_type_ids", "im_mask"):
            if key in full:
                assert enc[key] == full[key][start:]
        if "image_sizes" in full:
            assert enc["image_sizes"] == [full["image_sizes"][i] for i in kept_idx]

    check()
