"""Example-based template tests, one behaviour per test, with the byte-level TinyTokenizer (no tokenizer files)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from stand_in import all_template_specials

from vlmref.errors import SequenceTooLongError, TemplateInputError
from vlmref.templates import TEMPLATES, get_template, register_template
from vlmref.templates.media import IMAGE_SENTINEL
from vlmref.testing.tiny_tokenizer import BYTE_OFFSET, TinyTokenizer

# Special-token ids as the real tokenizers give them, from the golden cases (tests/stand_in.py).
SPECIALS = all_template_specials()


def tok(template_type: str) -> TinyTokenizer:
    ids, bos, eos, pad = SPECIALS[template_type]
    return TinyTokenizer(ids, bos=bos, eos=eos, pad=pad)


def tpl(template_type: str, **kwargs):
    return get_template(template_type, tok(template_type), **kwargs)


class Img:
    """Stands in for a PIL image: only ``size`` (w, h) and ``mode`` are read."""

    mode = "RGB"

    def __init__(self, w: int = 640, h: int = 480) -> None:
        self.size = (w, h)

    def __repr__(self) -> str:
        return f"Img{self.size}"


def b(text: str) -> list[int]:
    """Byte ids of plain text (no specials)."""
    return [BYTE_OFFSET + x for x in text.encode("utf-8")]


def supervised_text(t, enc) -> str:
    return t.tokenizer.decode([i for i in enc["labels"] if i != -100])


def mask(t, example) -> str:
    return t.render(example).mask_view()


# ---- loss masks ---------------------------------------------------------------------------------------------------


def test_every_response_supervised_prompt_never_qwen() -> None:
    t = tpl("qwen")
    ex = {"query": "Q3", "response": "R3", "history": [["Q1", "R1"], ["Q2", "R2"]]}
    enc = t.encode(ex)
    # qwen chat_sep '<|im_end|>\n' differs from the suffix '<|im_end|>': not supervised in history
    assert supervised_text(t, enc) == "R1R2R3<|im_end|>"
    assert len(enc["labels"]) == len(enc["input_ids"])
    for lab, i in zip(enc["labels"], enc["input_ids"], strict=True):
        assert lab in (-100, i)


def test_qwen_vl_history_sep_not_supervised() -> None:
    t = tpl("qwen-vl")
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "system": ""}
    assert mask(t, ex) == (
        "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n[[R1]]<|im_end|>\n"
        "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n[[R2]][[<|im_end|>]]"
    )


def test_llava_mistral_history_eos_supervised() -> None:
    t = tpl("llava-mistral")
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [Img(), None]}
    enc = t.encode(ex)
    assert supervised_text(t, enc) == "R1</s>R2</s>"
    assert mask(t, ex).count("[[</s>]]") == 2


def test_llava_yi_history_im_end_supervised() -> None:
    t = tpl("llava-yi")
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [None, Img()]}
    enc = t.encode(ex)
    assert supervised_text(t, enc) == "R1<|im_end|>R2<|im_end|>"


def test_llama_llava_next_history_eot_supervised() -> None:
    t = tpl("llama-llava-next")
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [Img(), None]}
    assert supervised_text(t, t.encode(ex)) == "R1<|eot_id|>R2<|eot_id|>"


def test_llava_qwen_history_sep_not_supervised() -> None:
    t = tpl("llava-qwen-instruct")
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [Img(), None]}
    assert supervised_text(t, t.encode(ex)) == "R1R2<|im_end|>"


def test_cogvlm_final_eos_id_supervised_history_newline_not() -> None:
    t = tpl("cogvlm")
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [Img()]}
    enc = t.encode(ex)
    assert enc["labels"][-1] == 2 == enc["input_ids"][-1]
    assert supervised_text(t, enc) == "R1R2</s>"


def test_yi_vl_suffix_supervised_chat_sep_not() -> None:
    t = tpl("yi-vl")
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [None, None], "system": ""}
    assert mask(t, ex) == "### Human: Q1\n### Assistant:[[R1]]\n### Human: Q2\n### Assistant:[[R2]][[\n###]]"


def test_chat_sep_omitted_when_next_query_empty() -> None:
    t = tpl("qwen")
    ex = {"query": "", "response": "R2", "history": [["Q1", "R1"]], "system": ""}
    assert mask(t, ex) == (
        "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n[[R1]]"
        "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n[[R2]][[<|im_end|>]]"
    )


@pytest.mark.parametrize("template_type", ["qwen", "llava-mistral", "yi-vl", "internlm-xcomposer2", "cogvlm"])
def test_generation_prompt_has_no_labels_and_no_suffix(template_type: str) -> None:
    t = tpl(template_type)
    ex = {"query": "Describe.", "response": None}
    enc = t.encode(ex)
    assert enc["labels"] is None
    rendered = t.render(ex)
    assert not any(s.loss for s in rendered.segments)
    train = t.encode({**ex, "response": "R"})
    # the training encoding is the prompt followed by the response and the suffix
    assert train["input_ids"][: len(enc["input_ids"])] == enc["input_ids"]
    assert len(train["input_ids"]) > len(enc["input_ids"]) + 1


def test_generation_prompt_ends_with_assistant_header() -> None:
    t = tpl("qwen")
    enc = t.encode({"query": "Hi", "response": None, "system": ""})
    assert t.tokenizer.decode(enc["input_ids"]).endswith("<|im_start|>assistant\n")


# ---- system -------------------------------------------------------------------------------------------------------


def test_system_none_uses_default() -> None:
    t = tpl("qwen")
    text = t.render({"query": "Q", "response": "R"}).text()
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nQ")


def test_system_empty_string_drops_system_block() -> None:
    t = tpl("qwen")
    text = t.render({"query": "Q", "response": "R", "system": ""}).text()
    assert text.startswith("<|im_start|>user\nQ")
    assert "system" not in text


def test_custom_system_rendered() -> None:
    t = tpl("llava-qwen-instruct")
    text = t.render({"query": "Q", "response": "R", "system": "Be brief."}).text()
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ")
    assert "helpful assistant" not in text


def test_default_system_override_at_get_template() -> None:
    t = tpl("qwen", default_system="Custom default.")
    assert t.render({"query": "Q", "response": "R"}).text().startswith("<|im_start|>system\nCustom default.<|im_end|>")
    t2 = tpl("qwen", default_system="")
    assert t2.render({"query": "Q", "response": "R"}).text().startswith("<|im_start|>user\n")


def test_cogvlm_system_raises_naming_system_field() -> None:
    t = tpl("cogvlm")
    with pytest.raises(TemplateInputError) as err:
        t.encode({"query": "Q", "response": "R", "system": "Be brief.", "images": [Img()]})
    assert err.value.field == "system"
    assert "system" in str(err.value)


def test_cogvlm_empty_or_none_system_ok() -> None:
    t = tpl("cogvlm")
    a = t.encode({"query": "Q", "response": "R", "system": ""})
    c = t.encode({"query": "Q", "response": "R", "system": None})
    assert a["input_ids"] == c["input_ids"]


def test_cogvlm_default_system_refused_at_get_template() -> None:
    with pytest.raises(TemplateInputError) as err:
        tpl("cogvlm", default_system="x")
    assert err.value.field == "default_system"


# ---- image tags: 'round' vs 'dialogue'/'none' ------------------------------------------------------------------


@pytest.mark.parametrize(
    "template_type", ["yi-vl", "llava-mistral", "llava-yi", "llama-llava-next", "llava-qwen-instruct"]
)
def test_round_templates_need_one_image_entry_per_turn(template_type: str) -> None:
    t = tpl(template_type)
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [Img()]}
    with pytest.raises(TemplateInputError) as err:
        t.encode(ex)
    assert err.value.field == "images"
    assert "2" in str(err.value) and "None" in str(err.value)


def test_round_none_marks_turn_without_image() -> None:
    t = tpl("yi-vl")
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [None, "b.png"], "system": ""}
    assert t.render(ex).text() == "### Human: Q1\n### Assistant:R1\n### Human: ⟦image 0⟧\nQ2\n### Assistant:R2\n###"
    enc = t.encode(ex)
    assert enc["images"] == ["b.png"]
    [[start, n]] = enc["image_spans"]
    assert n == 1024
    assert t.tokenizer.decode(enc["input_ids"][:start]).endswith("### Human: ")


def test_round_image_per_turn_each_in_its_turn() -> None:
    t = tpl("yi-vl")
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": ["a.png", "b.png"], "system": ""}
    assert t.render(ex).text() == (
        "### Human: ⟦image 0⟧\nQ1\n### Assistant:R1\n### Human: ⟦image 1⟧\nQ2\n### Assistant:R2\n###"
    )
    enc = t.encode(ex)
    assert [n for _, n in enc["image_spans"]] == [1024, 1024]
    for s, n in enc["image_spans"]:
        assert enc["input_ids"][s : s + n] == [IMAGE_SENTINEL] * n


def test_explicit_image_tags_count_mismatch_raises() -> None:
    t = tpl("llava-mistral")
    with pytest.raises(TemplateInputError) as err:
        t.encode({"query": "<image>A<image>B", "response": "R", "images": [Img()]})
    assert err.value.field == "images"


def test_explicit_image_tags_used_as_written() -> None:
    t = tpl("llava-mistral")
    ex = {"query": "Look: <image> now", "response": "R", "images": [Img(336, 336)]}
    text = t.render(ex).text()
    assert text == "<s>[INST] Look: ⟦image 0⟧\n now [/INST]R</s>"
    enc = t.encode(ex)
    assert [n for _, n in enc["image_spans"]] == [1176]


@pytest.mark.parametrize("template_type", ["qwen-vl", "internlm-xcomposer2"])
def test_none_type_puts_all_tags_in_first_round(template_type: str) -> None:
    t = tpl(template_type)
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": ["a.png", "b.png"], "system": ""}
    rendered = t.render(ex)
    text = rendered.text()
    first, second = text.split("R1", 1)
    assert "Q1" in first and "Q2" in second
    marker = "<img>" if template_type == "qwen-vl" else "⟦image"
    assert first.count(marker) == 2 and second.count(marker) == 0
    enc = t.encode(ex)
    assert len(enc["image_spans"]) == 2
    assert enc["images"] == ["a.png", "b.png"]


def test_dialogue_type_cogvlm_tag_in_first_round_but_block_after_bos() -> None:
    t = tpl("cogvlm")
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [Img()]}
    enc = t.encode(ex)
    assert enc["image_spans"] == [[1, 1227]]


def test_falsy_images_only_means_no_image() -> None:
    t = tpl("llava-mistral")
    enc = t.encode({"query": "Q", "response": "R", "images": [None]})
    assert enc["image_spans"] == [] and enc["images"] == []
    assert 32000 not in enc["input_ids"]


def test_bare_image_is_wrapped() -> None:
    t = tpl("qwen-vl")
    enc = t.encode({"query": "Q", "response": "R", "images": "a.png"})
    assert enc["images"] == ["a.png"]


# ---- cogvlm -------------------------------------------------------------------------------------------------------


def test_cogvlm_vision_block_after_bos_for_turn_two_image() -> None:
    t = tpl("cogvlm")
    ex = {"query": "<image>Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [Img()]}
    enc = t.encode(ex)
    ids = enc["input_ids"]
    assert ids[0] == 1  # BOS
    assert ids[1:1228] == [0] * 1227  # pad <unk> = 0
    assert ids[1228] != 0
    assert enc["image_spans"] == [[1, 1227]]
    assert t.tokenizer.decode(ids[1228:]) == "Question: Q1 Answer:R1\nQuestion: Q2 Answer:R2</s>"
    assert "<image>" not in t.tokenizer.decode(ids)


def test_cogvlm_token_type_ids_aligned() -> None:
    t = tpl("cogvlm")
    enc = t.encode({"query": "Q", "response": "R", "images": [Img()]})
    tt = enc["token_type_ids"]
    assert len(tt) == len(enc["input_ids"]) == len(enc["labels"])
    assert tt == [0] + [1] * 1227 + [0] * (len(tt) - 1228)
    assert all(lab == -100 for lab in enc["labels"][:1228])


def test_cogvlm_without_image_has_zero_token_types() -> None:
    t = tpl("cogvlm")
    enc = t.encode({"query": "Q", "response": "R"})
    assert enc["token_type_ids"] == [0] * len(enc["input_ids"])
    assert enc["image_spans"] == []


def test_cogvlm_more_than_one_image_raises() -> None:
    t = tpl("cogvlm")
    with pytest.raises(TemplateInputError) as err:
        t.encode({"query": "Q", "response": "R", "images": [Img(), Img()]})
    assert err.value.field == "images"


def test_cogvlm_vision_tokens_option() -> None:
    t = tpl("cogvlm", vision_tokens=7)
    enc = t.encode({"query": "Q", "response": "R", "images": [Img()]})
    assert enc["image_spans"] == [[1, 7]]


# ---- qwen-vl ------------------------------------------------------------------------------------------------------


def test_qwen_vl_images_column_becomes_img_tag_258_ids() -> None:
    t = tpl("qwen-vl")
    ex = {"query": "Describe.", "response": "A cat.", "images": ["cat.png"], "system": ""}
    assert t.render(ex).text() == (
        "<|im_start|>user\n<img>cat.png</img>Describe.<|im_end|>\n<|im_start|>assistant\nA cat.<|im_end|>"
    )
    enc = t.encode(ex)
    [[s, n]] = enc["image_spans"]
    assert n == 258
    span = enc["input_ids"][s : s + n]
    assert span[0] == 151857 and span[-1] == 151858
    assert bytes(span[1:8]) == b"cat.png"
    assert span[8:-1] == [151859] * 249
    assert enc["images"] == ["cat.png"]
    assert all(lab == -100 for lab in enc["labels"][s : s + n])


def test_qwen_vl_inline_img_tags_found() -> None:
    t = tpl("qwen-vl")
    ex = {"query": "Picture 1:<img>a.jpg</img>\nPicture 2:<img>b.jpg</img>\nCompare.", "response": "Same."}
    enc = t.encode(ex)
    assert enc["images"] == ["a.jpg", "b.jpg"]
    assert [n for _, n in enc["image_spans"]] == [258, 258]


def test_qwen_vl_non_string_image_raises() -> None:
    t = tpl("qwen-vl")
    with pytest.raises(TemplateInputError) as err:
        t.encode({"query": "Q", "response": "R", "images": [Img()]})
    assert err.value.field == "images"


# ---- internlm-xcomposer2 ------------------------------------------------------------------------------------------


def test_xcomposer2_inline_tags_become_slots_in_order() -> None:
    t = tpl("internlm-xcomposer2")
    ex = {
        "query": "<img>c.png</img>Q2",
        "response": "R2",
        "history": [["<img>a.png</img>Q1<img>b.png</img>", "R1"]],
        "system": "",
    }
    enc = t.encode(ex)
    assert enc["images"] == ["a.png", "b.png", "c.png"]
    spans = enc["image_spans"]
    assert [n for _, n in spans] == [256, 256, 256]
    assert [s for s, _ in spans] == sorted(s for s, _ in spans)
    im = enc["im_mask"]
    assert len(im) == len(enc["input_ids"])
    for s, n in spans:
        assert im[s : s + n] == [1] * n
        assert enc["input_ids"][s : s + n] == [IMAGE_SENTINEL] * n
    assert sum(im) == 3 * 256
    # image 1 and 2 surround Q1, image 3 precedes Q2
    ids = enc["input_ids"]
    assert t.tokenizer.decode(ids[spans[0][0] + 256 : spans[1][0]]) == "Q1"
    assert t.tokenizer.decode(ids[spans[2][0] + 256 :]).startswith("Q2[UNUSED_TOKEN_145]")
    assert "<img>" not in t.tokenizer.decode([i for i in ids if i != IMAGE_SENTINEL])


def test_xcomposer2_mixing_inline_tags_and_images_column_raises() -> None:
    t = tpl("internlm-xcomposer2")
    with pytest.raises(TemplateInputError) as err:
        t.encode({"query": "<img>a.png</img>Q", "response": "R", "images": ["b.png"]})
    assert err.value.field == "images"


@pytest.mark.parametrize("system", [None, ""])
def test_xcomposer2_single_bos_at_start(system) -> None:
    t = tpl("internlm-xcomposer2")
    ex = {"query": "<img>a.png</img>Q2", "response": "R2", "history": [["<img>b.png</img>Q1", "R1"]], "system": system}
    enc = t.encode(ex)
    assert enc["input_ids"][0] == 1
    assert enc["input_ids"].count(1) == 1


def test_xcomposer2_images_column_at_start_of_first_query() -> None:
    t = tpl("internlm-xcomposer2")
    ex = {"query": "Q", "response": "R", "images": ["a.png"], "system": ""}
    assert t.render(ex).text() == (
        "<s>[UNUSED_TOKEN_146]user\n⟦image 0⟧Q[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\nR[UNUSED_TOKEN_145]"
    )


def test_xcomposer2_5_hd_counts_and_hd_num_for_several_images() -> None:
    t = tpl("internlm-xcomposer2_5")
    one = t.encode({"query": "Q", "response": "R", "images": [Img(640, 480)]})
    assert [n for _, n in one["image_spans"]] == [2061]
    two = t.encode({"query": "Q", "response": "R", "images": [Img(640, 480), Img(336, 336)]})
    assert len(two["image_spans"]) == 2
    assert two["image_spans"][1][1] == 841
    assert sum(two["im_mask"]) == sum(n for _, n in two["image_spans"])
    # 1400x1400: hd_num 24 (one image) gives 3x3 tiles, hd_num 6 (two images) 2x2
    big = t.encode({"query": "Q", "response": "R", "images": [Img(1400, 1400)]})
    assert [n for _, n in big["image_spans"]] == [(9 + 1) * 400 + 1 + 4 * 20]
    big2 = t.encode({"query": "Q", "response": "R", "images": [Img(1400, 1400), Img(1400, 1400)]})
    assert [n for _, n in big2["image_spans"]] == [(4 + 1) * 400 + 1 + 3 * 20] * 2
    assert (
        tpl("internlm-xcomposer2_5", hd_num=24).encode(
            {"query": "Q", "response": "R", "images": [Img(1400, 1400), Img(1400, 1400)]}
        )["image_spans"][1][1]
        == 4081
    )


# ---- llava-mistral deviations ----------------------------------------------------------------------------------


def test_llava_mistral_system_inside_first_inst() -> None:
    t = tpl("llava-mistral")
    ex = {"query": "Q", "response": "R", "system": "SYS", "images": [Img()]}
    assert t.render(ex).text() == "<s>[INST] <<SYS>>\nSYS\n<</SYS>>\n\n⟦image 0⟧\nQ [/INST]R</s>"


def test_llava_mistral_no_system_by_default() -> None:
    t = tpl("llava-mistral")
    assert t.render({"query": "Q", "response": "R"}).text() == "<s>[INST] Q [/INST]R</s>"


def test_llava_mistral_second_turn_starts_with_inst() -> None:
    t = tpl("llava-mistral")
    ex = {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [Img(), None]}
    assert t.render(ex).mask_view() == "<s>[INST] ⟦image 0⟧\nQ1 [/INST][[R1]][[</s>]][INST] Q2 [/INST][[R2]][[</s>]]"


def test_llava_next_image_ids_and_sizes() -> None:
    t = tpl("llava-mistral")
    enc = t.encode({"query": "Q", "response": "R", "images": [Img(640, 480)]})
    [[s, n]] = enc["image_spans"]
    assert n == 2340
    assert enc["input_ids"][s : s + n] == [32000] * n
    assert enc["input_ids"][s + n] == BYTE_OFFSET + ord("\n")
    assert enc["image_sizes"] == [[480, 640]]


def test_llava_next_tokenizer_without_image_token_raises() -> None:
    t = get_template("llava-mistral", TinyTokenizer({"<s>": 1, "</s>": 2}, bos="<s>", eos="</s>"))
    with pytest.raises(TemplateInputError) as err:
        t.encode({"query": "Q", "response": "R", "images": [Img()]})
    assert err.value.field == "tokenizer"


# ---- truncation ---------------------------------------------------------------------------------------------------


def test_delete_raises_with_lengths() -> None:
    full = tpl("qwen").encode({"query": "Q", "response": "R"})
    n = len(full["input_ids"])
    assert tpl("qwen", max_length=n).encode({"query": "Q", "response": "R"})["input_ids"] == full["input_ids"]
    with pytest.raises(SequenceTooLongError) as err:
        tpl("qwen", max_length=n - 1).encode({"query": "Q", "response": "R"})
    assert err.value.length == n and err.value.max_length == n - 1
    assert err.value.image_tokens == 0


def test_max_length_counts_image_positions() -> None:
    ex = {"query": "Q", "response": "R", "images": [Img()]}
    full = tpl("cogvlm").encode(ex)
    n = len(full["input_ids"])
    assert n > 1227
    text_only = n - 1227
    with pytest.raises(SequenceTooLongError) as err:
        tpl("cogvlm", max_length=text_only + 10).encode(ex)
    assert err.value.length == n
    assert err.value.image_tokens == 1227


def test_truncation_left_keeps_last_ids() -> None:
    ex = {"query": "Q" * 20, "response": "R" * 5, "history": [["H" * 10, "r"]]}
    full = tpl("qwen").encode(ex)
    enc = tpl("qwen", max_length=17, truncation_strategy="truncation_left").encode(ex)
    assert enc["input_ids"] == full["input_ids"][-17:]
    assert enc["labels"] == full["labels"][-17:]
    assert len(enc["labels"]) == len(enc["input_ids"])


def test_truncation_ignore_alias_is_delete() -> None:
    t = tpl("qwen", max_length=3, truncation_strategy="ignore")
    with pytest.raises(SequenceTooLongError):
        t.encode({"query": "Q", "response": "R"})


def test_unknown_truncation_strategy_raises() -> None:
    with pytest.raises(ValueError):
        tpl("qwen", truncation_strategy="right")


def test_truncation_left_inside_span_drops_whole_image_llava() -> None:
    ex = {"query": "Q", "response": "R", "images": [Img(640, 480)]}
    full = tpl("llava-mistral").encode(ex)
    [[s, n]] = full["image_spans"]
    total = len(full["input_ids"])
    max_length = total - (s + n // 2)  # cut through the middle of the image
    enc = tpl("llava-mistral", max_length=max_length, truncation_strategy="truncation_left").encode(ex)
    assert enc["input_ids"] == full["input_ids"][s + n :]
    assert len(enc["input_ids"]) < max_length
    assert enc["labels"] == full["labels"][s + n :]
    assert enc["image_spans"] == [] and enc["images"] == [] and enc["image_sizes"] == []
    assert 32000 not in enc["input_ids"]


def test_truncation_left_cut_at_span_start_keeps_image() -> None:
    ex = {"query": "Q", "response": "R", "images": [Img(640, 480)]}
    full = tpl("llava-mistral").encode(ex)
    [[s, n]] = full["image_spans"]
    enc = tpl("llava-mistral", max_length=len(full["input_ids"]) - s, truncation_strategy="truncation_left").encode(ex)
    assert enc["image_spans"] == [[0, n]]
    assert enc["image_sizes"] == [[480, 640]]


def test_truncation_left_two_images_keeps_later_one_consistent() -> None:
    ex = {
        "query": "Q2",
        "response": "R2",
        "history": [["Q1", "R1"]],
        "images": [Img(640, 480), Img(336, 336)],
    }
    full = tpl("llava-yi").encode(ex)
    (s0, n0), (s1, n1) = full["image_spans"]
    assert (n0, n1) == (2340, 1176)
    total = len(full["input_ids"])
    enc = tpl("llava-yi", max_length=total - (s0 + 5), truncation_strategy="truncation_left").encode(ex)
    cut = s0 + n0
    assert enc["input_ids"] == full["input_ids"][cut:]
    assert enc["image_spans"] == [[s1 - cut, n1]]
    assert enc["image_sizes"] == [[336, 336]]
    assert len(enc["images"]) == 1 and enc["images"][0].size == (336, 336)


def test_truncation_left_xcomposer_im_mask_consistent() -> None:
    ex = {"query": "<img>a</img>Q<img>b</img>", "response": "R"}
    full = tpl("internlm-xcomposer2").encode(ex)
    (s0, n0), (s1, n1) = full["image_spans"]
    total = len(full["input_ids"])
    enc = tpl("internlm-xcomposer2", max_length=total - (s1 + 1), truncation_strategy="truncation_left").encode(ex)
    assert enc["image_spans"] == [] and enc["images"] == []
    assert enc["im_mask"] == [0] * len(enc["input_ids"])
    enc2 = tpl("internlm-xcomposer2", max_length=total - (s0 + 1), truncation_strategy="truncation_left").encode(ex)
    assert enc2["images"] == ["b"]
    [[s, n]] = enc2["image_spans"]
    assert enc2["im_mask"][s : s + n] == [1] * n and sum(enc2["im_mask"]) == n


def test_truncation_left_cogvlm_drops_vision_block_and_token_types() -> None:
    ex = {"query": "Q", "response": "R", "images": [Img()]}
    full = tpl("cogvlm").encode(ex)
    total = len(full["input_ids"])
    enc = tpl("cogvlm", max_length=total - 100, truncation_strategy="truncation_left").encode(ex)
    assert enc["input_ids"] == full["input_ids"][1228:]
    assert enc["token_type_ids"] == [0] * len(enc["input_ids"])
    assert enc["images"] == [] and enc["image_spans"] == []


def test_truncation_left_generation_prompt_labels_none() -> None:
    enc = tpl("qwen", max_length=5, truncation_strategy="truncation_left").encode({"query": "Hello", "response": None})
    assert enc["labels"] is None and len(enc["input_ids"]) == 5


# ---- misc ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template_type", "example"),
    [
        ("llava-mistral", {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": (Img(), None)}),
        ("qwen-vl", {"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": "a.png"}),
        ("internlm-xcomposer2", {"query": "<img>a</img>Q2", "response": "R2", "history": [["<img>b</img>Q1", "R1"]]}),
        ("yi-vl", {"query": "Q2", "response": "R2", "history": [("Q1", "R1")], "images": ["a", "b"], "system": "S"}),
        ("cogvlm", {"query": "Q", "response": "R", "images": [Img()]}),
    ],
)
def test_encode_does_not_mutate_example(template_type: str, example: dict) -> None:
    before = copy.deepcopy(example)
    images_obj = example.get("images")
    history_obj = example.get("history")
    tpl(template_type).encode(example)
    tpl(template_type).render(example)
    assert example.keys() == before.keys()
    assert example.get("images") is images_obj
    assert example.get("history") is history_obj
    assert repr(example) == repr(before)


def test_history_turn_must_be_pair_of_strings() -> None:
    with pytest.raises(TemplateInputError) as err:
        tpl("qwen").encode({"query": "Q", "response": "R", "history": [["Q1"]]})
    assert err.value.field == "history"


def test_non_string_query_raises() -> None:
    with pytest.raises(TemplateInputError) as err:
        tpl("qwen").encode({"query": 3, "response": "R"})
    assert err.value.field == "query"


def test_stop_words_and_suffix_exposed() -> None:
    t = tpl("yi-vl")
    assert t.stop_words == ["\n###"] and t.suffix == ["\n###"]


# ---- registry -----------------------------------------------------------------------------------------------------


def test_registering_duplicate_template_raises() -> None:
    meta = TEMPLATES.get("qwen-vl")
    before = (TEMPLATES.names(), TEMPLATES.aliases())
    with pytest.raises(ValueError, match="already registered"):
        register_template(meta)
    with pytest.raises(ValueError, match="llava-qwen"):
        register_template(dataclasses.replace(meta, template_type="vlmref-test-template", aliases=("llava-qwen",)))
    assert (TEMPLATES.names(), TEMPLATES.aliases()) == before


def test_default_system_without_system_prefix_refused() -> None:
    meta = TEMPLATES.get("cogvlm")
    with pytest.raises(ValueError):
        register_template(dataclasses.replace(meta, template_type="vlmref-test-template-2", default_system="x"))
    assert "vlmref-test-template-2" not in TEMPLATES


def test_template_alias_resolves() -> None:
    t = get_template("llama3-llava-next", tok("llama-llava-next"))
    assert t.template_type == "llama-llava-next"
    assert TEMPLATES.get("llava-qwen").template_type == "llava-qwen-instruct"


@pytest.mark.parametrize(
    ("model_type", "template_type"),
    [("llava1_6-mistral-7b-instruct", "llava-mistral"), ("cogvlm-17b-chat", "cogvlm")],
)
def test_model_alias_resolves_to_template(model_type: str, template_type: str) -> None:
    import vlmref

    resolved = vlmref.get_default_template_type(model_type)
    assert resolved == template_type
    assert vlmref.get_template(resolved, tok(template_type)).template_type == template_type


def test_unknown_template_raises_keyerror() -> None:
    with pytest.raises(KeyError):
        get_template("no-such-template", tok("qwen"))


def test_every_template_encodes_with_its_tiny_tokenizer() -> None:
    assert sorted(TEMPLATES.names()) == sorted(SPECIALS)
    for name in TEMPLATES.names():
        enc = tpl(name).encode({"query": "Q", "response": "R"})
        assert enc["labels"][-1] != -100
        assert b("R")[0] in enc["labels"]


@pytest.mark.parametrize("template_type", ["yi-vl", "llava-mistral", "qwen-vl", "internlm-xcomposer2"])
@pytest.mark.parametrize("field", ["response", "system", "history"])
def test_image_tag_outside_user_turns_is_refused(template_type: str, field: str) -> None:
    from vlmref.errors import TemplateInputError

    meta = TEMPLATES.get(template_type)
    if field == "system" and not meta.supports_system:
        pytest.skip("template has no system")
    tag = "<img>x.png</img>" if template_type == "qwen-vl" else "<image>"
    example = {"query": "Q", "response": "R", "images": ["a.png"], "history": []}
    if meta.infer_media_type == "round" and field == "history":
        example["images"] = ["a.png", None]
    if field == "history":
        example["history"] = [["Q0", f"see {tag}"]]
    else:
        example[field] = f"see {tag}"
    with pytest.raises(TemplateInputError) as err:
        tpl(template_type).encode(example)
    assert err.value.field.startswith(field) and "only allowed in user turns" in str(err.value)


def test_max_length_can_exclude_image_positions_like_ms_swift() -> None:
    """max_length_counts_images=False: the text is bounded by max_length and image positions come on top (ms-swift
    2.2.0's budget, which lets the seeds' LLaVA-NeXT coco commands train at the default 2048)."""
    from stand_in import golden_specials

    ids, bos, eos, pad = golden_specials("yi-vl")
    tok = TinyTokenizer(ids, bos=bos, eos=eos, pad=pad)
    example = {"query": "q", "response": "r", "images": ["a.png"]}
    full = get_template("yi-vl", tok, image_tokens=1024).encode(example)
    text_len = len(full["input_ids"]) - 1024
    strict = get_template("yi-vl", tok, max_length=text_len, image_tokens=1024)
    with pytest.raises(SequenceTooLongError):
        strict.encode(example)
    swift_budget = get_template("yi-vl", tok, max_length=text_len, image_tokens=1024, max_length_counts_images=False)
    assert swift_budget.encode(example)["input_ids"] == full["input_ids"]
    with pytest.raises(SequenceTooLongError) as err:
        get_template("yi-vl", tok, max_length=text_len - 1, image_tokens=1024, max_length_counts_images=False).encode(example)
    assert err.value.max_length == text_len - 1 + 1024
