"""``--template_profile`` on ``sft`` and ``infer``, and model-side media under ``swift-2.2.0``.

Under swift-2.2.0 llava-hf, lmms-lab and Yi-VL leave one marker per image in ``input_ids`` (ms-swift's upstream
models expanded it in ``forward``). ``Template(model_side_media=True)`` expands each marker with the official media
step after the swift encode and its cut, so vlmref's models can run swift's ids. Unit tests use the byte-level
TinyTokenizer (no files) and the real tokenizers (skipped without them); the runs train tiny random models.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from stand_in import all_template_specials

from vlmref.errors import SequenceTooLongError, TemplateInputError
from vlmref.templates import get_template
from vlmref.templates.meta import SWIFT_2_2_0, get_template_meta, template_profile_error
from vlmref.testing.tiny_tokenizer import TinyTokenizer

SPECIALS = all_template_specials()
SAME_TEXT = ("llava-mistral", "llava-yi", "yi-vl")  # one-image sample: swift and official write the same text
LMMS = ("llama-llava-next", "llava-qwen-instruct")
MODEL_SIDE = (*SAME_TEXT, *LMMS)
EXAMPLE = {"query": "Describe this image.", "response": "A cat.", "system": ""}
SAME_SYSTEM = {"yi-vl": None}  # yi-vl: the default system prompt is the same in both profiles


class Img:
    """Stands in for a PIL image: only ``size`` (w, h) and ``mode`` are read."""

    mode = "RGB"

    def __init__(self, w: int = 640, h: int = 480) -> None:
        self.size = (w, h)


def tiny_tok(template_type: str, without: tuple[str, ...] = ()) -> TinyTokenizer:
    ids, bos, eos, pad = SPECIALS[template_type]
    return TinyTokenizer({k: v for k, v in ids.items() if k not in without}, bos=bos, eos=eos, pad=pad)


def example(template_type: str, images: list) -> dict:
    ex = {**EXAMPLE, "images": images}
    if template_type in SAME_SYSTEM:
        ex["system"] = SAME_SYSTEM[template_type]
    if template_type in LMMS:
        ex.pop("system")
    return ex


def official_fill(template_type: str, tokenizer) -> dict:
    """What sft/infer pass: the model config's image id, which equals the tokenizer's ``<image>`` id there."""
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    return {} if image_id is None else {"image_token_id": image_id}


def image_runs(enc: dict) -> list[list[int]]:
    return [enc["input_ids"][s : s + n] for s, n in enc["image_spans"]]


def without_spans(enc: dict, key: str = "input_ids") -> list[int]:
    drop = {p for s, n in enc["image_spans"] for p in range(s, s + n)}
    return [t for i, t in enumerate(enc[key]) if i not in drop]


# ---- the expansion ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("template_type", SAME_TEXT)
def test_model_side_expansion_equals_official_when_the_text_is_the_same(template_type: str) -> None:
    tok = tiny_tok(template_type)
    ex = example(template_type, [Img()])
    official = get_template(template_type, tok).encode(ex)
    swift = get_template(template_type, tok, profile=SWIFT_2_2_0).encode(ex)
    expanded = get_template(template_type, tok, profile=SWIFT_2_2_0, model_side_media=True,
                            model_media_options=official_fill(template_type, tok)).encode(ex)
    # swift-2.2.0 alone: one marker per image, nothing expanded (the oracle's exact ids)
    assert swift["image_spans"] == [] and len(swift["input_ids"]) == len(official["input_ids"]) - official[
        "image_spans"][0][1] + 1
    # model-side: the official ids, labels, spans and extras
    assert expanded["input_ids"] == official["input_ids"] and expanded["labels"] == official["labels"]
    assert expanded["image_spans"] == official["image_spans"] and expanded["images"] == official["images"]
    assert expanded.get("image_sizes") == official.get("image_sizes")
    assert image_runs(expanded) == image_runs(official)
    assert all(expanded["labels"][p] == -100 for s, n in expanded["image_spans"] for p in range(s, s + n))


@pytest.mark.parametrize("template_type", LMMS)
def test_lmms_markers_take_the_model_config_image_id(template_type: str) -> None:
    """ms-swift's lmms-lab tokenizer has no ``<image>``: the fill id comes from ``model_media_options``."""
    config_id = SPECIALS[template_type][0]["<image>"]
    tok = tiny_tok(template_type, without=("<image>",))  # as swift-2.2.0 loads it (tokenizer_added_tokens=False)
    ex = example(template_type, [Img()])
    official = get_template(template_type, tiny_tok(template_type)).encode(ex)
    swift = get_template(template_type, tok, profile=SWIFT_2_2_0).encode(ex)
    expanded = get_template(template_type, tok, profile=SWIFT_2_2_0, model_side_media=True,
                            model_media_options={"image_token_id": config_id}).encode(ex)
    assert swift["input_ids"].count(-200) == 1 and -200 not in expanded["input_ids"]
    assert image_runs(expanded) == image_runs(official) == [[config_id] * 2340]
    assert expanded["image_sizes"] == official["image_sizes"] == [[480, 640]]
    # around the image: swift's text with the marker taken out
    assert without_spans(expanded) == [t for t in swift["input_ids"] if t != -200]
    assert without_spans(expanded, "labels") == [t for i, t in enumerate(swift["labels"])
                                                 if swift["input_ids"][i] != -200]
    with pytest.raises(TemplateInputError, match="no <image> token"):
        get_template(template_type, tok, profile=SWIFT_2_2_0, model_side_media=True).encode(ex)


def test_yi_vl_multi_turn_markers_are_expanded_in_order() -> None:
    tok = tiny_tok("yi-vl")
    ex = {"query": "And this?", "response": "Blue.", "history": [["What is it?", "Red."]], "images": [Img(), Img()]}
    official = get_template("yi-vl", tok).encode(ex)
    expanded = get_template("yi-vl", tok, profile=SWIFT_2_2_0, model_side_media=True).encode(ex)
    assert len(expanded["image_spans"]) == 2 and expanded["input_ids"] == official["input_ids"]
    assert expanded["labels"] == official["labels"]


@pytest.mark.parametrize("template_type", ["cogvlm", "internlm-xcomposer2", "qwen-vl", "qwen"])
def test_templates_without_markers_ignore_model_side_media(template_type: str) -> None:
    tok = tiny_tok(template_type)
    ex = {"query": "Describe this image.", "response": "A cat."}
    if template_type != "qwen":
        ex["images"] = ["cat.png"] if template_type == "qwen-vl" else [Img()]
    assert get_template_meta(template_type, SWIFT_2_2_0).model_media is None
    plain = get_template(template_type, tok, profile=SWIFT_2_2_0).encode(ex)
    model_side = get_template(template_type, tok, profile=SWIFT_2_2_0, model_side_media=True).encode(ex)
    assert model_side == plain


def test_official_profile_has_no_markers_for_the_model() -> None:
    for template_type in MODEL_SIDE:
        assert get_template_meta(template_type).model_media is None
        assert get_template_meta(template_type, SWIFT_2_2_0).model_media in ("llava_next", "yi_vl")


def test_swift_cut_comes_before_the_expansion() -> None:
    """ms-swift applies max_length to the text ids; the model adds the image positions on top."""
    tok = tiny_tok("yi-vl")
    ex = example("yi-vl", [Img()])
    n_swift = len(get_template("yi-vl", tok, profile=SWIFT_2_2_0).encode(ex)["input_ids"])
    fits = get_template("yi-vl", tok, profile=SWIFT_2_2_0, max_length=n_swift, model_side_media=True).encode(ex)
    assert len(fits["input_ids"]) == n_swift - 1 + 1024 and fits["image_spans"][0][1] == 1024
    with pytest.raises(SequenceTooLongError):
        get_template("yi-vl", tok, profile=SWIFT_2_2_0, max_length=n_swift - 1, model_side_media=True).encode(ex)
    # truncation_left through the marker: swift keeps the text after it, so the image goes with its marker
    short = get_template("yi-vl", tok, profile=SWIFT_2_2_0, max_length=20, truncation_strategy="truncation_left")
    cut = get_template("yi-vl", tok, profile=SWIFT_2_2_0, max_length=20, truncation_strategy="truncation_left",
                       model_side_media=True)
    assert cut.encode(ex)["input_ids"] == short.encode(ex)["input_ids"] and len(short.encode(ex)["input_ids"]) == 20
    assert cut.encode(ex)["image_spans"] == [] and cut.encode(ex)["images"] == []


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("template_type", [*SAME_TEXT, "llava-qwen-instruct"])
def test_real_tokenizers_model_side_equals_official_at_image_positions(template_type: str, tokenizers_root: Path,
                                                                       golden_dir: Path) -> None:
    from vlmref.testing.golden import IMG_A, load_golden_tokenizer

    official_tok = load_golden_tokenizer(template_type, tokenizers_root)
    swift_tok = load_golden_tokenizer(template_type, tokenizers_root, SWIFT_2_2_0)
    ex = example(template_type, [IMG_A])
    root = str(golden_dir)
    official = get_template(template_type, official_tok, media_root=root).encode(ex)
    fill = official_fill(template_type, official_tok)
    # the tokenizer ms-swift 2.2.0 loads (lmms-lab without <image>, Yi with transformers 4.41's '▁' rule)
    expanded = get_template(template_type, swift_tok, profile=SWIFT_2_2_0, media_root=root, model_side_media=True,
                            model_media_options=fill).encode(ex)
    assert image_runs(expanded) == image_runs(official) and expanded.get("image_sizes") == official.get("image_sizes")
    if template_type in SAME_TEXT:  # the tokenizer sft and infer load (the model's): the same text, the same ids
        same = get_template(template_type, official_tok, profile=SWIFT_2_2_0, media_root=root, model_side_media=True,
                            model_media_options=fill).encode(ex)
        assert same["input_ids"] == official["input_ids"] and same["labels"] == official["labels"]


# ---- argument validation ---------------------------------------------------------------------------------------------
def test_profile_errors_are_one_line() -> None:
    from vlmref.llm.infer import InferArguments
    from vlmref.llm.sft_args import SftArgumentError, parse_sft_args

    assert template_profile_error("yi-vl", SWIFT_2_2_0) is None and template_profile_error("yi-vl", "official") is None
    base = ["--model_type", "yi-vl-6b-chat", "--dataset", "x.jsonl"]
    resolved = parse_sft_args([*base, "--template_profile", SWIFT_2_2_0], log=lambda m: None).resolve()
    assert resolved.template_profile == SWIFT_2_2_0 and resolved.to_dict()["template_profile"] == SWIFT_2_2_0
    cases = [([*base, "--template_profile", "swift-9"], "expected one of official, swift-2.2.0"),
             (["--model_type", "internlm-xcomposer2_5-7b-chat", "--dataset", "x.jsonl", "--template_profile",
               SWIFT_2_2_0], "no 'internlm-xcomposer2_5' template"),
             ([*base, "--template_profile", SWIFT_2_2_0, "--max_length_counts_images", "true"], "before images")]
    for argv, message in cases:
        with pytest.raises(SftArgumentError, match=message) as err:
            parse_sft_args(argv, log=lambda m: None).resolve()
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="--template_profile 'swift-9'"):
        InferArguments(model_type="yi-vl-6b-chat", template_profile="swift-9")
    assert InferArguments(model_type="yi-vl-6b-chat").template_profile == "official"


@pytest.mark.parametrize("command", ["sft", "infer"])
def test_bad_profile_on_the_command_line(command: str, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    from vlmref.cli.main import main

    argv = [command, "--model_type", "llava1d6-mistral-7b-instruct", "--template_profile", "swift-9"]
    if command == "sft":
        argv += ["--dataset", str(tmp_path / "x.jsonl"), "--output_dir", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --template_profile 'swift-9'"), err
    assert not (tmp_path / "out").exists()


# ---- sft and infer on tiny models ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three one-image rows with a 336x336 image (LLaVA-NeXT: 1176 positions, the fewest anyres gives)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("profile_data")
    Image.new("RGB", (336, 336), (200, 30, 30)).save(folder / "red.png")
    row = {"query": "What colour is it?", "response": "Red.", "images": [str(folder / "red.png")]}
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for _ in range(3)), encoding="utf-8")
    return path


def _swift_sft(model_type: str, base: Path, data: Path, out: Path) -> tuple[Path, str]:
    from vlmref.cli.main import main

    argv = ["sft", "--model_type", model_type, "--model_id_or_path", str(base), "--dataset", str(data),
            "--output_dir", str(out), "--template_profile", SWIFT_2_2_0, "--max_steps", "1",
            "--gradient_accumulation_steps", "1", "--dataset_test_ratio", "0", "--evaluation_strategy", "no",
            "--save_strategy", "steps", "--save_steps", "1", "--gradient_checkpointing", "false",
            "--disable_tqdm", "true"]
    assert main(argv) == 0
    (run,) = (out / model_type).iterdir()
    return run, (run / "logging.jsonl").read_text(encoding="utf-8")


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("model_type,image_id", [("llava1d6-mistral-7b-instruct", 32000),
                                                 ("llama3-llava-next-8b", 128256)])
def test_sft_with_the_swift_profile_trains_and_infer_restores_it(model_type: str, image_id: int, data: Path,
                                                                 tokenizers_root: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    from sft_worker import tiny_checkpoint

    from vlmref.cli.main import main
    from vlmref.llm.infer import InferArguments

    base = tiny_checkpoint(tmp_path, model_type)
    run, log = _swift_sft(model_type, base, data, tmp_path / "out")
    printed = capsys.readouterr().out
    # the first sample: swift's ids with the marker expanded model-side (-200 for lmms-lab is gone)
    assert f"[{image_id} * 1176]" in printed and "-200" not in printed.split("[INPUT_IDS]")[1].split("\n")[0]
    losses = [json.loads(line)["loss"] for line in log.splitlines() if '"loss"' in line]
    assert len(losses) == 1 and losses[0] > 0
    ckpt = run / "checkpoint-1"
    for folder in (run, ckpt):
        assert json.loads((folder / "sft_args.json").read_text())["template_profile"] == SWIFT_2_2_0
    # infer --ckpt_dir: the profile comes back from sft_args.json unless given
    assert InferArguments(ckpt_dir=str(ckpt)).template_profile == SWIFT_2_2_0
    assert InferArguments(ckpt_dir=str(ckpt), template_profile="official").template_profile == "official"
    assert main(["infer", "--ckpt_dir", str(ckpt), "--val_dataset", str(data), "--show_dataset_sample", "1",
                 "--max_new_tokens", "2", "--temperature", "0", "--verbose", "true"]) == 0
    out = capsys.readouterr()
    assert f"template_profile: {SWIFT_2_2_0}" in out.err
    assert re.search(rf"\[{image_id} \* 1176\]", out.out)
    (result,) = (ckpt / "infer_result").glob("*.jsonl")
    assert len(result.read_text(encoding="utf-8").splitlines()) == 1


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("template_type", ["cogvlm", "yi-vl", "llava-yi"])
def test_profile_tokenizer_gives_ms_swift_ids_from_the_models_own_tokenizer(template_type: str,
                                                                            tokenizers_root: Path) -> None:
    """sft/infer load the model's tokenizer (official semantics); ``profile_tokenizer`` fits it to the swift-2.2.0
    profile, and then every ms-swift 2.2.0 oracle case of the template is reproduced, the caller's tokenizer intact."""
    from vlmref.llm.inference import profile_tokenizer
    from vlmref.testing.golden import load_golden_tokenizer
    from vlmref.testing.oracle import ORACLE_TEMPLATES, difference, encode_case, load_fixture

    model_tok = load_golden_tokenizer(template_type, tokenizers_root)
    fitted = profile_tokenizer(model_tok, template_type, SWIFT_2_2_0)
    assert fitted is not model_tok and model_tok.prefix_policy != fitted.prefix_policy
    assert profile_tokenizer(model_tok, template_type, "official") is model_tok
    meta = get_template_meta(template_type, SWIFT_2_2_0)
    cases = load_fixture(ORACLE_TEMPLATES / f"{template_type}.json")["cases"]
    problems = [p for p in (difference(c["swift"], encode_case(meta, fitted, c)) for c in cases) if p]
    assert not problems, problems[:3]
    unfitted = [p for p in (difference(c["swift"], encode_case(meta, model_tok, c)) for c in cases) if p]
    assert unfitted  # the fitting is what makes them equal
