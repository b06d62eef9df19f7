"""Collation and per-family image preprocessing, with the byte-level stand-in tokenizer and generated images."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from stand_in import all_template_specials

from vlmref.datasets.collate import CollateError, DataCollator, ImageRequiredError
from vlmref.datasets.processors import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, expand2square, get_image_processor
from vlmref.errors import VlmrefError
from vlmref.models.cogvlm.processing import CogVLMImageProcessor
from vlmref.models.internlm_xcomposer2.image_tokens import xcomposer2_5_grid, xcomposer2_5_image_tokens
from vlmref.models.internlm_xcomposer2.processing import XComposer2_5ImageProcessor, XComposer2ImageProcessor
from vlmref.models.llava_next.processing import LlavaNextImageProcessor
from vlmref.models.model_types import MODELS
from vlmref.models.qwen_vl.processing import QwenVLImageProcessor
from vlmref.models.yi_vl.processing import YiVLImageProcessor
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

SPECIALS = all_template_specials()
LLAVA_TYPES = ["llava1d6-mistral-7b-instruct", "llava1d6-yi-34b-instruct", "llama3-llava-next-8b", "llava-next-72b"]


def tok(model_type: str) -> TinyTokenizer:
    ids, bos, eos, pad = SPECIALS[MODELS.get(model_type).template]
    return TinyTokenizer(ids, bos=bos, eos=eos, pad=pad)


def tpl(model_type: str, **kwargs):
    meta = MODELS.get(model_type)
    return get_template(meta.template, tok(model_type), **{**meta.media_options, **kwargs})


def img(w: int = 640, h: int = 480, seed: int = 0) -> Image.Image:
    """A deterministic textured RGB image (resampling filters matter on it, unlike on a flat colour)."""
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([(x * 7 + y * 3 + seed) % 256, (x * 2 + y * 5 + 40 * seed) % 256, (x ^ y) % 256], -1)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def flat(color, w: int = 64, h: int = 48) -> Image.Image:
    return Image.new("RGB", (w, h), color)


def collate(model_type: str, samples, **kwargs):
    return DataCollator(model_type, tok(model_type), **kwargs)(samples)


# ---- padding, masks, labels ----------------------------------------------------------------------------------------


def test_right_padding_masks_and_labels() -> None:
    t = tpl("qwen-vl-chat")
    a = t.encode({"query": "Hi", "response": "Yo"})
    b = t.encode({"query": "A much longer question", "response": "and a longer answer"})
    out = collate("qwen-vl-chat", [a, b])
    pad = tok("qwen-vl-chat").pad_token_id
    n, m = len(a["input_ids"]), len(b["input_ids"])
    assert out["input_ids"].shape == out["labels"].shape == out["attention_mask"].shape == (2, m)
    assert out["input_ids"].dtype == out["labels"].dtype == out["attention_mask"].dtype == torch.long
    assert out["input_ids"][0, :n].tolist() == a["input_ids"] and out["input_ids"][0, n:].eq(pad).all()
    assert out["labels"][0, :n].tolist() == a["labels"] and out["labels"][0, n:].eq(-100).all()
    assert out["attention_mask"].sum(1).tolist() == [n, m]
    assert out["attention_mask"][0, :n].eq(1).all() and out["attention_mask"][0, n:].eq(0).all()
    assert out["input_ids"][1].tolist() == b["input_ids"]
    assert not {"pixel_values", "images_per_sample", "image_sizes"} & set(out)  # no images, no image keys


def test_left_padding_for_generation_omits_labels() -> None:
    t = tpl("qwen-vl-chat")
    a, b = t.encode({"query": "Hi"}), t.encode({"query": "A longer prompt"})
    assert a["labels"] is None
    out = collate("qwen-vl-chat", [a, b], padding_side="left")
    n, m = len(a["input_ids"]), len(b["input_ids"])
    assert "labels" not in out
    assert out["input_ids"][0, m - n :].tolist() == a["input_ids"]
    assert out["attention_mask"][0].tolist() == [0] * (m - n) + [1] * n


def test_pad_id_sources() -> None:
    sample = [{"input_ids": [5, 6], "labels": None}, {"input_ids": [5], "labels": None}]
    eos_only = SimpleNamespace(pad_token_id=None, eos_token_id=7)
    assert DataCollator("qwen-vl-chat", eos_only)(sample)["input_ids"][1].tolist() == [5, 7]
    assert DataCollator("qwen-vl-chat", eos_only, pad_token_id=0)(sample)["input_ids"][1].tolist() == [5, 0]
    with pytest.raises(ValueError, match="pad"):
        DataCollator("qwen-vl-chat", SimpleNamespace(pad_token_id=None, eos_token_id=None))
    with pytest.raises(ValueError, match="padding_side"):
        DataCollator("qwen-vl-chat", pad_token_id=0, padding_side="middle")


def test_mixing_training_and_generation_samples_is_refused() -> None:
    t = tpl("qwen-vl-chat")
    with pytest.raises(CollateError, match=r"batch\[1\]"):
        collate("qwen-vl-chat", [t.encode({"query": "Q", "response": "R"}), t.encode({"query": "Q"})])


def test_sanity_checks_name_the_batch_position() -> None:
    t = tpl("llava1d6-mistral-7b-instruct")
    good = t.encode({"query": "Q", "response": "R", "images": [img()]})
    short = copy.deepcopy(good)
    short["labels"] = short["labels"][:-1]
    with pytest.raises(CollateError, match=r"batch\[1\]: labels has .* input_ids has"):
        collate("llava1d6-mistral-7b-instruct", [good, short])
    lost = copy.deepcopy(good)
    lost["images"] = []
    with pytest.raises(CollateError, match=r"batch\[1\]: 1 image placeholder span\(s\) but 0 image\(s\)"):
        collate("llava1d6-mistral-7b-instruct", [good, lost])
    with pytest.raises(CollateError, match="empty batch"):
        collate("llava1d6-mistral-7b-instruct", [])


def test_exif_rotated_file_counts_agree(tmp_path) -> None:
    # 640 x 480 pixels stored with EXIF orientation 6 (rotate 90): upright it is 480 wide, 640 high.
    exif = Image.Exif()
    exif[0x0112] = 6
    img(640, 480).save(tmp_path / "rotated.jpg", exif=exif)
    t = get_template("llava-mistral", tok("llava1d6-mistral-7b-instruct"), media_root=str(tmp_path))
    sample = t.encode({"query": "Q", "response": "R", "images": ["rotated.jpg"]})
    assert sample["image_sizes"] == [[640, 480]]
    out = collate("llava1d6-mistral-7b-instruct", [sample], media_root=str(tmp_path))
    assert out["image_sizes"].tolist() == [[640, 480]]
    assert sample["image_spans"][0][1] == 2352


def test_image_that_changed_size_since_encode_is_caught() -> None:
    t = tpl("llava1d6-mistral-7b-instruct")
    sample = t.encode({"query": "Q", "response": "R", "images": [img(640, 480)]})
    sample["images"] = [img(480, 640)]  # e.g. an EXIF rotation applied by the loader but not by the size probe
    with pytest.raises(CollateError, match=r"batch\[0\] image 0 .* reserved 2340 positions but .* needs 2352"):
        collate("llava1d6-mistral-7b-instruct", [sample])


# ---- CogVLM ------------------------------------------------------------------------------------------------------


def test_cogvlm_token_type_ids_and_pixels() -> None:
    t = tpl("cogvlm-17b-instruct")
    a = t.encode({"query": "Describe.", "response": "A cat.", "images": [img()]})
    b = t.encode({"query": "Describe this image in detail.", "response": "A grey cat.", "images": [img(300, 900)]})
    out = collate("cogvlm-17b-instruct", [a, b])
    n = len(a["input_ids"])
    assert out["token_type_ids"].dtype == torch.long
    assert out["token_type_ids"].sum(1).tolist() == [1227, 1227]
    assert out["token_type_ids"][0, n:].eq(0).all() and out["input_ids"][0, n:].eq(0).all()  # pad <unk> = 0
    assert out["labels"][:, 1:1228].eq(-100).all()
    assert out["pixel_values"].shape == (2, 3, 490, 490) and out["pixel_values"].dtype == torch.float32
    assert out["images_per_sample"].tolist() == [1, 1]


def test_cogvlm_refuses_a_row_without_image() -> None:
    t = tpl("cogvlm-17b-instruct")
    with_image = t.encode({"query": "Q", "response": "R", "images": [img()]})
    text_only = t.encode({"query": "Q", "response": "R"})
    with pytest.raises(ImageRequiredError, match=r"batch\[1\] has no image") as info:
        collate("cogvlm-17b-instruct", [with_image, text_only])
    assert isinstance(info.value, VlmrefError) and info.value.position == 1
    with pytest.raises(ImageRequiredError, match=r"batch\[0\]"):
        collate("cogvlm-17b-instruct", [text_only])


# ---- XComposer2 / 2.5 --------------------------------------------------------------------------------------------


def test_xcomposer2_im_mask_and_image_order() -> None:
    t = tpl("internlm-xcomposer2-7b-chat")
    colors = [(250, 0, 0), (0, 250, 0), (0, 0, 250)]
    a = t.encode({"query": "Q", "response": "R", "images": [flat(colors[0])]})
    b = t.encode({"query": "Compare.", "response": "Different.", "images": [flat(colors[1]), flat(colors[2])]})
    out = collate("internlm-xcomposer2-7b-chat", [a, b])
    assert out["im_mask"].dtype == torch.bool
    assert out["im_mask"].sum(1).tolist() == [256, 512]
    assert not out["im_mask"][0, len(a["input_ids"]) :].any()
    assert out["pixel_values"].shape == (3, 3, 224, 224)
    assert out["images_per_sample"].tolist() == [1, 2]
    mean, std = torch.tensor(OPENAI_CLIP_MEAN), torch.tensor(OPENAI_CLIP_STD)
    rgb = (out["pixel_values"].mean((2, 3)) * std + mean) * 255  # de-normalised mean colour per image
    assert torch.allclose(rgb, torch.tensor(colors, dtype=torch.float32), atol=0.5)  # batch order kept


@pytest.mark.parametrize(("w", "h"), [(640, 480), (300, 900), (336, 336), (3000, 1000), (500, 200)])
def test_xcomposer2_5_tiles_agree_with_template_count(w: int, h: int) -> None:
    t = tpl("internlm-xcomposer2_5-7b-chat")
    sample = t.encode({"query": "Q", "response": "R", "images": [img(w, h)]})
    proc = get_image_processor("internlm-xcomposer2_5-7b-chat")
    out = collate("internlm-xcomposer2_5-7b-chat", [sample])
    (tensor,) = out["pixel_values"]
    rows, cols = tensor.shape[1] // 560, tensor.shape[2] // 560
    assert tensor.shape[1:] == (rows * 560, cols * 560)
    assert (rows, cols) == xcomposer2_5_grid(h, w, 24)
    assert sample["image_spans"][0][1] == xcomposer2_5_image_tokens(h, w, hd_num=24) == proc.positions(out)[0]
    assert sum(sample["im_mask"]) == (rows * cols + 1) * 400 + 1 + (rows + 1) * 20


def test_xcomposer2_5_hd_num_per_sample_and_mixed_batch() -> None:
    t = tpl("internlm-xcomposer2_5-7b-chat")
    one = t.encode({"query": "Q", "response": "R", "images": [img(1500, 1500)]})
    two = t.encode({"query": "Q", "response": "R", "images": [img(1500, 1500), img(1500, 1500, seed=1)]})
    text = t.encode({"query": "Q", "response": "R"})
    out = collate("internlm-xcomposer2_5-7b-chat", [one, text, two])
    assert [tuple(x.shape) for x in out["pixel_values"]] == [(3, 1680, 1680), (3, 1120, 1120), (3, 1120, 1120)]
    assert xcomposer2_5_grid(1500, 1500, 24) == (3, 3) and xcomposer2_5_grid(1500, 1500, 6) == (2, 2)
    assert out["images_per_sample"].tolist() == [1, 0, 2]
    assert out["im_mask"][1].sum() == 0


def test_xcomposer2_5_keeps_the_template_hd_num_after_truncation_left() -> None:
    """Two images are counted with hd_num 6; truncation_left drops the first; the survivor is still tiled with 6."""
    example = {"query": "<image>A<image>B", "response": "R", "images": [img(1500, 1500), img(1500, 1500, seed=1)]}
    full = tpl("internlm-xcomposer2_5-7b-chat").encode(example)
    (_, first_len), (second_start, _) = full["image_spans"]
    cut = len(full["input_ids"]) - second_start + 1  # keeps only the second image whole
    sample = tpl("internlm-xcomposer2_5-7b-chat", max_length=cut, truncation_strategy="truncation_left").encode(example)
    assert len(sample["images"]) == 1 and sample["hd_num"] == [6]
    out = collate("internlm-xcomposer2_5-7b-chat", [sample])
    assert tuple(out["pixel_values"][0].shape) == (3, 1120, 1120)  # (2, 2) tiles: hd_num 6, not 24
    stripped = {k: v for k, v in sample.items() if k != "hd_num"}
    with pytest.raises(CollateError):  # without the record the count would be re-derived (24) and disagree
        collate("internlm-xcomposer2_5-7b-chat", [stripped])


def test_xcomposer2_5_pads_white_bottom_or_right() -> None:
    proc = XComposer2_5ImageProcessor()
    white = (1 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)
    (land,) = proc([img(640, 480)])["pixel_values"]  # resized to 1120 x 840, padded below to 1120
    assert torch.allclose(land[:, 840:, :], white[:, None, None].expand(3, 280, 1120))
    assert not torch.allclose(land[:, 839, :], white[:, None].expand(3, 1120))
    (port,) = proc([img(480, 640)])["pixel_values"]  # portrait: transposed, so the padding is on the right
    assert port.shape == (3, 1120, 1120) and torch.allclose(port[:, :, 840:], white[:, None, None].expand(3, 1120, 280))


# ---- Yi-VL -------------------------------------------------------------------------------------------------------


def test_yi_vl_expand2square_then_clip_448() -> None:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    image = img(640, 480)
    ours = YiVLImageProcessor()([image])["pixel_values"]
    assert ours.shape == (1, 3, 448, 448)
    background = tuple(int(x * 255) for x in OPENAI_CLIP_MEAN)
    assert background == (122, 116, 104)
    clip = CLIPImageProcessorPil(size={"shortest_edge": 448}, crop_size={"height": 448, "width": 448})
    ref = clip(expand2square(image, background), return_tensors="pt")["pixel_values"]
    assert torch.allclose(ours, ref, atol=1e-5)
    bg = (torch.tensor(background) / 255 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)
    assert torch.allclose(ours[0, :, 0, :], bg[:, None].expand(3, 448), atol=1e-5)  # top band is the mean colour


def test_yi_vl_collate_mixed_turns() -> None:
    t = tpl("yi-vl-6b-chat")
    a = t.encode({"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [img(), img(seed=2)]})
    b = t.encode({"query": "Q2", "response": "R2", "history": [["Q1", "R1"]], "images": [None, None]})
    out = collate("yi-vl-6b-chat", [a, b])
    assert out["pixel_values"].shape == (2, 3, 448, 448)
    assert out["images_per_sample"].tolist() == [2, 0]


# ---- fixed-size processors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "size", "span", "model_type", "option"),
    [
        (CogVLMImageProcessor, 490, 1227, "cogvlm-17b-instruct", "vision_tokens"),
        (XComposer2ImageProcessor, 224, 256, "internlm-xcomposer2-7b-chat", "image_tokens"),
        (YiVLImageProcessor, 448, 1024, "yi-vl-6b-chat", "image_tokens"),
        (QwenVLImageProcessor, 448, 258, "qwen-vl-chat", None),
    ],
)
def test_fixed_size_processors_match_clip_resize_and_registry(cls, size, span, model_type, option) -> None:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    proc = get_image_processor(model_type)
    assert type(proc) is cls
    image = img(640, 480)
    out = proc([image, image])
    assert out["pixel_values"].shape == (2, 3, size, size)
    assert proc.positions(out) == [span, span]
    if option:
        assert MODELS.get(model_type).media_options[option] == span
    if cls is not YiVLImageProcessor:  # a plain (size, size) bicubic resize, as torchvision's Resize on PIL images
        ref = CLIPImageProcessorPil(size={"height": size, "width": size}, do_center_crop=False)
        assert torch.allclose(out["pixel_values"][0], ref(image, return_tensors="pt")["pixel_values"][0], atol=1e-5)


def test_qwen_vl_loads_paths_from_the_ids(tmp_path) -> None:
    for name, image in (("a.png", img(640, 480)), ("b.png", img(300, 900, seed=3))):
        image.save(tmp_path / name)
    t = tpl("qwen-vl-chat")
    a = t.encode({"query": "Picture 1:<img>a.png</img>\nPicture 2:<img>b.png</img>\nCompare.", "response": "R"})
    b = t.encode({"query": "No picture here.", "response": "R"})
    c = t.encode({"query": "Describe.", "response": "R", "images": ["b.png"]})
    assert a["images"] == ["a.png", "b.png"]
    out = collate("qwen-vl-chat", [a, b, c], media_root=str(tmp_path))
    assert out["pixel_values"].shape == (3, 3, 448, 448)
    assert out["images_per_sample"].tolist() == [2, 0, 1]
    assert torch.equal(out["pixel_values"][1], out["pixel_values"][2])  # b.png twice


def test_processors_are_deterministic() -> None:
    image = img(640, 480)
    for model_type in ["cogvlm-17b-instruct", "qwen-vl-chat", "internlm-xcomposer2-7b-chat", "yi-vl-6b-chat",
                       "internlm-xcomposer2_5-7b-chat", "llava1d6-mistral-7b-instruct"]:
        proc = get_image_processor(model_type)
        first = proc([image])["pixel_values"]
        second = get_image_processor(model_type)([image.copy()])["pixel_values"]
        for x, y in zip(first, second, strict=True):
            assert torch.equal(x, y), model_type


def test_get_image_processor_names_and_overrides() -> None:
    assert type(get_image_processor("cogvlm-17b-chat")) is CogVLMImageProcessor  # ms-swift alias
    assert type(get_image_processor("llava-qwen-instruct")) is LlavaNextImageProcessor  # template type
    assert get_image_processor("internlm-xcomposer2_5-7b-chat", hd_num=9).hd_num_for(3) == 9
    assert get_image_processor("internlm-xcomposer2_5-7b-chat").hd_num_for(2) == 6
    with pytest.raises(KeyError, match="takes no images"):
        get_image_processor("qwen")
    with pytest.raises(KeyError, match="unknown"):
        get_image_processor("no-such-model")


# ---- LLaVA-NeXT --------------------------------------------------------------------------------------------------


def _hf_token_count(proc: LlavaNextImageProcessor, out: dict, index: int) -> int:
    """transformers' own expansion count (LlavaNextProcessor.replace_image_token, llava-hf processor_config)."""
    from transformers.models.llava_next.processing_llava_next import LlavaNextProcessor

    hf = LlavaNextProcessor.__new__(LlavaNextProcessor)
    hf.image_processor, hf.patch_size, hf.image_token = proc.hf, 14, "<image>"
    hf.num_additional_image_tokens, hf.vision_feature_select_strategy = 1, "default"
    return len(hf.replace_image_token(out, index)) // len("<image>")


@pytest.mark.parametrize(("w", "h"), [(640, 480), (336, 336), (300, 900), (300, 200), (1000, 500)])
def test_llava_next_counts_agree_with_transformers(w: int, h: int) -> None:
    from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

    t = tpl("llava1d6-mistral-7b-instruct")
    first = t.encode({"query": "Q", "response": "R", "images": [img(w, h)]})
    other = t.encode({"query": "Q", "response": "R", "images": [img(640, 640)]})  # largest grid: 5 patches
    collator = DataCollator("llava1d6-mistral-7b-instruct", tok("llava1d6-mistral-7b-instruct"))
    out = collator([first, other])
    proc = collator.image_processor
    assert out["image_sizes"].tolist() == [[h, w], [640, 640]] and out["image_sizes"].dtype == torch.long
    assert out["pixel_values"].shape == (2, 5, 3, 336, 336)
    patches = image_size_to_num_patches((h, w), proc.pinpoints, 336)
    assert out["pixel_values"][0, patches:].eq(0).all() and out["pixel_values"][0, :patches].ne(0).any((1, 2, 3)).all()
    count = _hf_token_count(proc, out, 0)
    assert first["image_spans"][0][1] == count == proc.positions(out)[0]
    assert first["input_ids"].count(32000) == count


@pytest.mark.parametrize("model_type", LLAVA_TYPES)
def test_llava_next_families_mixed_batch(model_type: str) -> None:
    t = tpl(model_type)
    a = t.encode({"query": "Q", "response": "R", "images": [img()]})
    b = t.encode({"query": "Q", "response": "R"})
    out = collate(model_type, [a, b])
    assert out["pixel_values"].shape == (1, 5, 3, 336, 336)
    assert out["image_sizes"].tolist() == [[480, 640]]
    assert out["images_per_sample"].tolist() == [1, 0]
    no_images = collate(model_type, [b, b])
    assert "pixel_values" not in no_images and "image_sizes" not in no_images
