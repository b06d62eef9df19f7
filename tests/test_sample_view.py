"""The first-training-sample view ``vlmref sft`` logs (``vlmref.llm.sample_view``): image spans read as one piece."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vlmref.cli.render import stand_in_tokenizer
from vlmref.llm.inference import template_kwargs_for
from vlmref.llm.sample_view import format_example
from vlmref.models.loader import get_model_tokenizer
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template

GARBAGE = re.compile(r"[\ufffd\x00-\x08\x0b-\x1f\x7f]")  # replacement characters, raw control bytes


def _real(model_type: str, tokenizers_root: Path):
    folder = tokenizers_root / MODELS.get(model_type).tokenizer.family
    if not folder.is_dir():
        pytest.skip(f"no {folder}")
    return get_model_tokenizer(model_type, load_model=False, model_id_or_path=str(folder))[1]


def _view(model_type: str, tokenizer, example: dict, profile: str = "official") -> tuple[str, dict]:
    """What ``SftRun._load_data`` logs: the template built as sft builds it, the view of its encode."""
    template = get_template(MODELS.get(model_type).template, tokenizer, profile=profile, **template_kwargs_for(model_type))
    enc = template.encode(example)
    return format_example(tokenizer, enc, template), enc


def _input_line(view: str) -> str:
    return view.split("[INPUT] ", 1)[1].split("\n[LABELS_IDS]", 1)[0]


@pytest.fixture
def cat_png(tmp_path: Path) -> str:
    from PIL import Image

    path = tmp_path / "cat.png"
    Image.new("RGB", (640, 480), (200, 20, 20)).save(path)
    return str(path)


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("profile", ["official", "swift-2.2.0"])
def test_qwen_vl_first_sample_shows_image_paths(tokenizers_root: Path, profile: str) -> None:
    tok = _real("qwen-vl-chat", tokenizers_root)
    a, b = "/data/coco/猫 0001.jpg", "https://example.com/b.png"
    view, enc = _view("qwen-vl-chat", tok, {"query": f"Picture 1:<img>{a}</img>\nPicture 2:<img>{b}</img>\nSame?",
                                            "response": "Yes."}, profile)
    text = _input_line(view)
    assert f"Picture 1:<img>[image 0: {a}, 256 positions]</img>\nPicture 2:<img>[image 1: {b}, 256 positions]</img>" \
           "\nSame?<|im_end|>\n<|im_start|>assistant\nYes.<|im_end|>" in text
    assert not GARBAGE.search(text), text
    assert "<imgpad>" not in text and text.count("<img>") == 2
    assert "[LABELS] [-100 * " in view and view.endswith("]Yes.<|im_end|>")
    assert view.startswith("[INPUT_IDS] " + " ".join(map(str, enc["input_ids"][:8])))  # the ids line stays ms-swift's


@pytest.mark.real_tokenizer
def test_cogvlm_first_sample_marks_the_vision_positions(tokenizers_root: Path) -> None:
    tok = _real("cogvlm-17b-instruct", tokenizers_root)
    view, enc = _view("cogvlm-17b-instruct", tok, {"query": "Describe this image.", "response": "A cat.",
                                                   "images": ["cat.png"]})
    n = MODELS.get("cogvlm-17b-instruct").media_options["vision_tokens"]
    assert enc["image_spans"] == [[1, n]]
    assert _input_line(view) == f"<s>[image 0: cat.png, {n} positions]Question: Describe this image. Answer: A cat.</s>"
    assert f"[LABELS] [-100 * {n + 10}]A cat.</s>" in view


@pytest.mark.parametrize("model_type", [m for m in MODELS.names() if MODELS.get(m).template != "cogvlm"])
def test_every_family_shows_each_image_span_as_one_piece(model_type: str, cat_png: str) -> None:
    """Stand-in tokenizer (special tokens with the real ids): the image fill ids never reach the decoded text."""
    tok = stand_in_tokenizer(model_type)
    inline = MODELS.get(model_type).template in ("qwen-vl", "internlm-xcomposer2", "internlm-xcomposer2_5")
    example = ({"query": f"<img>{cat_png}</img>Describe this image.", "response": "A cat."} if inline else
               {"query": "Describe this image.", "response": "A cat.", "images": [cat_png]})
    view, enc = _view(model_type, tok, example)
    (start, n), = enc["image_spans"]
    positions = 256 if MODELS.get(model_type).template == "qwen-vl" else n  # Qwen-VL: <img> and </img> are text
    text = _input_line(view)
    assert f"[image 0: {cat_png}, {positions} positions]" in text
    assert "Describe this image." in text and "A cat." in text
    assert not GARBAGE.search(text) and "<image><image>" not in text and "[-200 *" not in text, text


def test_text_only_sample_is_plain_decode() -> None:
    tok = stand_in_tokenizer("llava1d6-mistral-7b-instruct")
    view, enc = _view("llava1d6-mistral-7b-instruct", tok, {"query": "Hi", "response": "Hello."})
    n_prompt = len(enc["input_ids"]) - len(tok.encode("Hello.")) - 1
    assert view.splitlines()[1:] == ["[INPUT] <s>[INST] Hi [/INST]Hello.</s>",
                                     f"[LABELS_IDS] [-100 * {n_prompt}] " + " ".join(map(str, enc["labels"][n_prompt:])),
                                     f"[LABELS] [-100 * {n_prompt}]Hello.</s>"]


def test_sft_logs_the_sample_view() -> None:
    """``vlmref sft`` prints its first sample with this module's view (the real run is tested in test_sft.py)."""
    from vlmref.llm import sample_view, sft

    assert sft.format_example is sample_view.format_example
