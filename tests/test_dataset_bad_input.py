"""Bad input a new user meets in the first hour: each is one named row error (or one ``error:`` line), never a crash,
never a row that silently trains without what it meant (issue 13: datasets and check-data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from stand_in import golden_specials

from vlmref.cli.main import main
from vlmref.datasets import formats
from vlmref.datasets.loader import encode_sample, load_dataset
from vlmref.datasets.reasons import REASONS
from vlmref.datasets.rules import RowChecker
from vlmref.datasets.sample import RowOrigin, Sample
from vlmref.errors import DatasetError, DatasetRowError, TemplateInputError
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template
from vlmref.templates.inline_images import InlineMarkupError, find_inline_images
from vlmref.testing.tiny_tokenizer import TinyTokenizer

INLINE_MODELS = ["qwen-vl-chat", "internlm-xcomposer2-7b-chat", "internlm-xcomposer2_5-7b-chat"]
MALFORMED = {  # query text -> (problem, character the message names)
    "Picture 1:<img>img/a.png\nWhat is it?": ("unclosed", 10),
    "<img><img>img/a.png</img></img> What is it?": ("nested", 5),
    "Picture 1:<img></img>\nWhat is it?": ("empty", 10),
    "Picture 1:<img>  </img>\nWhat is it?": ("empty", 10),
    "Picture 1:img/a.png</img>\nWhat is it?": ("unopened", 19),
    "<img>img/a.png</img> and <img>img/b.png": ("unclosed", 25),
}


def stand_in_template(model_type: str, **kw):
    template_type = MODELS.get(model_type).template
    ids, bos, eos, pad = golden_specials(template_type)
    return get_template(template_type, TinyTokenizer(ids, bos=bos, eos=eos, pad=pad), **kw)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (40, 30), "red").save(tmp_path / "img" / name)
    return tmp_path


# ---- 1. malformed inline <img> markup ------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "problem"), list(MALFORMED.items()))
def test_inline_parser_names_the_problem_and_where(text: str, problem: tuple[str, int]) -> None:
    with pytest.raises(InlineMarkupError) as e:
        find_inline_images(text)
    assert (e.value.problem, e.value.position) == problem and f"character {problem[1]}" in str(e.value)


def test_inline_parser_reads_well_formed_markup() -> None:
    assert find_inline_images("Picture 1:<img>a.png</img>\nPicture 2:<img>b c.png</img>") == [
        (10, 26, "a.png"), (37, 55, "b c.png")]
    assert find_inline_images("no markup, <image> and <ref>x</ref>") == []


@pytest.mark.parametrize("model_type", INLINE_MODELS)
def test_check_data_reports_malformed_markup_by_line(data_dir: Path, model_type: str, capsys) -> None:
    rows = [{"query": "Picture 1:<img>img/a.png</img>\nWhat is it?", "response": "red"}]
    rows += [{"query": text, "response": "red"} for text in MALFORMED]
    path = write_jsonl(data_dir / "d.jsonl", rows)
    code = main(["check-data", "--model_type", model_type, "--dataset", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    for line in range(2, len(rows) + 1):
        assert f"{path}:{line}: field 'query': expected inline images written <img>PATH</img>" in out
    assert f"{len(rows)} rows, 1 valid, {len(MALFORMED)} invalid" in out and f"image_markup {len(MALFORMED)}" in out


@pytest.mark.parametrize("model_type", INLINE_MODELS)
def test_malformed_markup_in_history_under_every_strategy(data_dir: Path, model_type: str) -> None:
    rows = [{"query": "ok", "response": "fine"},
            {"query": "q", "response": "r", "history": [["<img>img/a.png", "h"]]}]
    path = write_jsonl(data_dir / "d.jsonl", rows)
    for strategy in ("none", "error", "warning"):
        with pytest.raises(DatasetRowError) as e:
            load_dataset(str(path), model_type, check_dataset_strategy=strategy)
        assert (e.value.line, e.value.field, e.value.reason) == (2, "history[0]", "image_markup")
    loaded = load_dataset(str(path), model_type, check_dataset_strategy="discard")
    assert len(loaded.train) == 1 and loaded.report.by_reason == {"image_markup": 1}


@pytest.mark.parametrize(("model_type", "profile"), [(m, p) for m in INLINE_MODELS for p in ("official", "swift-2.2.0")
                                                   if (m, p) != ("internlm-xcomposer2_5-7b-chat", "swift-2.2.0")])
@pytest.mark.parametrize("text", list(MALFORMED))
def test_templates_refuse_malformed_markup(model_type: str, profile: str, text: str) -> None:
    template = stand_in_template(model_type, profile=profile)
    with pytest.raises(TemplateInputError) as e:
        template.encode({"query": text, "response": "red"})
    assert (e.value.field, e.value.reason) == ("query", "image_markup")
    with pytest.raises(TemplateInputError) as e:
        template.encode({"query": "q", "response": "r", "history": [[text, "h"]]})
    assert e.value.field == "history[0]"


def test_render_prints_one_error_line_for_malformed_markup(capsys) -> None:
    code = main(["render", "--model_type", "qwen-vl-chat", "--query", "Picture 1:<img>a.png\nWhat is it?",
                 "--response", "red"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert "field 'query'" in line and "'<img>' at character 10 is never closed" in line


def test_qwen_template_refuses_a_path_over_256_bytes_by_name() -> None:
    template = stand_in_template("qwen-vl-chat")
    long_path = "/data/" + "d" * 300 + ".png"
    with pytest.raises(TemplateInputError) as e:
        template.encode({"query": f"<img>{long_path}</img>hi", "response": "r"})
    assert (e.value.field, e.value.reason) == ("query", "path_too_long") and "at most 256 UTF-8 bytes" in str(e.value)
    with pytest.raises(TemplateInputError) as e:
        template.encode({"query": "hi", "response": "r", "images": [long_path]})
    assert (e.value.field, e.value.reason) == ("images[0]", "path_too_long")


# ---- 4. near-miss media fields -------------------------------------------------------------------------------------
NEAR_MISS_ROWS = [
    {"query": "ok", "response": "fine", "images": ["img/a.png"]},
    {"query": "q", "response": "r", "image": "img/a.png"},
    {"query": "q", "response": "r", "img": ["img/a.png"]},
    {"query": "q", "response": "r", "Images": ["img/b.png"], "id": 7},
]


def test_check_data_names_each_near_miss_field_with_a_suggestion(data_dir: Path, capsys) -> None:
    path = write_jsonl(data_dir / "d.jsonl", NEAR_MISS_ROWS)
    code = main(["check-data", "--model_type", "qwen-vl-chat", "--dataset", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    for line, key in ((2, "image"), (3, "img"), (4, "Images")):
        assert f"{path}:{line}: field '{key}': expected 'images' (did you mean 'images'?" in out
    assert "4 rows, 1 valid, 3 invalid" in out and "near_miss_field 3" in out
    assert "ignored): id (1 rows)" in out and "image (" not in out  # no longer "ignored" without a line


@pytest.mark.parametrize("strategy", ["error", "discard"])
def test_near_miss_field_is_an_invalid_row(data_dir: Path, strategy: str) -> None:
    path = write_jsonl(data_dir / "d.jsonl", NEAR_MISS_ROWS)
    if strategy == "error":
        with pytest.raises(DatasetRowError) as e:
            load_dataset(str(path), "qwen-vl-chat", check_dataset_strategy=strategy)
        assert (e.value.line, e.value.field, e.value.reason) == (2, "image", "near_miss_field")
        return
    loaded = load_dataset(str(path), "qwen-vl-chat", check_dataset_strategy=strategy)
    assert len(loaded.train) == 1 and loaded.report.by_reason == {"near_miss_field": 3}
    assert loaded.report.sources[str(path)].discarded == 3


@pytest.mark.parametrize("strategy", ["none", "warning"])
def test_near_miss_field_is_reported_by_line_and_kept(data_dir: Path, strategy: str) -> None:
    path = write_jsonl(data_dir / "d.jsonl", NEAR_MISS_ROWS)
    loaded = load_dataset(str(path), "qwen-vl-chat", check_dataset_strategy=strategy)
    report = loaded.report
    assert len(loaded.train) == 4 and report.ok  # kept, as the strategy says, but not silently:
    assert [(w.line, w.field, w.reason) for w in report.warnings] == [
        (2, "image", "near_miss_field"), (3, "img", "near_miss_field"), (4, "Images", "near_miss_field")]
    summary = report.summary()
    assert f"warning: {path}:2: field 'image': expected 'images' (did you mean 'images'?" in summary
    assert "near_miss_field 3" in summary and json.loads(json.dumps(report.to_dict()))["warnings"][0]["line"] == 2


# ---- 5. .json rows are located in one pass -------------------------------------------------------------------------
class _CountingText(str):
    """A file text that adds up how many characters ``count`` scans."""

    scanned = 0

    def count(self, sub, start=0, end=None):  # noqa: A003 - str.count's own name
        end = len(self) if end is None else end
        _CountingText.scanned += max(0, end - start)
        return super().count(sub, start, end)


class _File:
    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def read(self) -> str:
        return _CountingText(Path(self.path).read_text(encoding="utf-8"))


def test_json_line_numbers_cost_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"query": f"q{i}", "response": f"r{i}", "history": [["h", "r"]]} for i in range(2000)]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    monkeypatch.setattr(formats, "open", lambda p, **kw: _File(p), raising=False)
    _CountingText.scanned = 0
    got = list(formats.read_rows(str(path)))
    size = len(path.read_text(encoding="utf-8"))
    assert len(got) == 2000 and _CountingText.scanned <= 2 * size  # counting from the start each row: ~1000 x size
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [i + 1 for i, text in enumerate(lines) if text == "  {"]
    assert [r.origin.line for r in got] == starts


# ---- 6. named datasets: the dataset's name and the row's index -----------------------------------------------------
def test_named_dataset_rows_are_named_by_dataset_and_row(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         capsys) -> None:
    from vlmref.datasets import named

    monkeypatch.setenv("VLMREF_CACHE", str(tmp_path))
    real = named.sample_raw_rows

    def broken(name: str):
        rows = real(name)
        rows[5] = {**rows[5], "caption": None}
        rows[9] = {**rows[9], "image": {"path": str(tmp_path / "gone.png")}}
        return rows

    monkeypatch.setattr(named, "sample_raw_rows", broken)
    loaded = load_dataset("coco-en-2-mini-sample#24", "llava1d6-mistral-7b-instruct", check_dataset_strategy="discard",
                          check_images=True)
    messages = sorted(i.message for i in loaded.report.issues)
    assert [(i.row, i.reason) for i in sorted(loaded.report.issues, key=lambda i: i.row)] == [
        (5, "wrong_type"), (9, "image_missing")]
    assert messages[0].startswith("coco-en-2-mini-sample row 5: field 'caption': expected a string; found None")
    assert messages[1].startswith("coco-en-2-mini-sample row 9: field 'images[0]': expected a readable image")
    assert not any("#24" in m for m in messages)
    code = main(["check-data", "--model_type", "llava1d6-mistral-7b-instruct", "--dataset", "coco-en-2-mini-sample#3"])
    assert code in (0, 1) and "#3 row" not in capsys.readouterr().out


def test_named_split_picks_the_same_rows_as_before(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vlmref.datasets.named import load_named_split

    monkeypatch.setenv("VLMREF_CACHE", str(tmp_path))
    loaded = load_dataset("coco-en-2-mini-sample#10", "llava1d6-mistral-7b-instruct", dataset_test_ratio=0.2)
    train, val = load_named_split("coco-en-2-mini-sample#10", dataset_test_ratio=0.2)
    assert [(s.images[0], s.response) for s in loaded.train] == [(r["images"][0], r["response"]) for r in train]
    assert [(s.images[0], s.response) for s in loaded.val] == [(r["images"][0], r["response"]) for r in val]
    assert {s.origin.source for s in loaded.val} == {"coco-en-2-mini-sample (val)"}


# ---- 7. an empty dataset is an error -------------------------------------------------------------------------------
EMPTY_FILES = {"empty.jsonl": "", "blank.jsonl": "\n  \n\n", "empty.json": "", "array.json": "[ \n ]\n",
               "header.csv": "query,response\n", "empty.csv": ""}


@pytest.mark.parametrize("name", list(EMPTY_FILES))
def test_check_data_refuses_an_empty_dataset(tmp_path: Path, name: str, capsys) -> None:
    path = tmp_path / name
    path.write_text(EMPTY_FILES[name], encoding="utf-8")
    code = main(["check-data", "--model_type", "qwen-vl-chat", "--dataset", str(path)])
    captured = capsys.readouterr()
    assert code == 2 and "every row checked" not in captured.out
    assert captured.err.splitlines() == [f"error: {path}: the dataset has no rows (an empty file, only blank lines, [] "
                                         "or only a CSV header); expected at least one row"]
    with pytest.raises(DatasetError, match="has no rows"):
        load_dataset(str(path), "qwen-vl-chat")


def test_one_empty_file_among_several_is_named(data_dir: Path) -> None:
    good = write_jsonl(data_dir / "good.jsonl", [{"query": "q", "response": "r"}])
    empty = data_dir / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DatasetError, match=f"^{empty}: the dataset has no rows"):
        load_dataset([str(good), str(empty)], "qwen-vl-chat", check_dataset_strategy="discard")


@pytest.mark.real_tokenizer
def test_sft_refuses_an_empty_dataset(tokenizers_root: Path, tmp_path: Path, capsys) -> None:
    from vlmref.models.tiny import create_tiny_checkpoint

    base = tmp_path / "tiny"
    create_tiny_checkpoint("llava1d6-mistral-7b-instruct", base, seed=0, overwrite=True)
    empty = tmp_path / "train.jsonl"
    empty.write_text("\n\n")
    code = main(["sft", "--model_type", "llava1d6-mistral-7b-instruct", "--model_id_or_path", str(base), "--dataset",
                 str(empty),
                 "--output_dir", str(tmp_path / "out"), "--disable_tqdm", "true"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert f"error: {empty}: the dataset has no rows" in err


# ---- 14. messages ------------------------------------------------------------------------------------------------
def test_malformed_json_is_reported_at_its_real_column(tmp_path: Path) -> None:
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"query": "ok", "response": "fine"}\n{"query": "a",   "response": nope}\n')
    with pytest.raises(DatasetRowError) as e:
        load_dataset(str(jsonl), "qwen-vl-chat", check_dataset_strategy="error")
    assert e.value.line == 2 and "at column 30" in str(e.value)
    cases = {
        '[\n  {"query": "a",\n   "response": nope}\n]': r":3: invalid JSON \(Expecting value at column 16\)",
        '[\n  {"query": "a", "response": "b"}\n  {"query": "c"}\n]':
            r":3: invalid JSON \(expected ',' or ']' after row 1 at column 3; found '\{'\)",
        '  {"query": "a", "response": "b"}\n': r":1: a .json dataset must be one JSON array of row objects \(one object "
                                               r"per line is a .jsonl file\); found '\{' at column 3",
        '[{"query": "a", "response": "b"}': r":1: invalid JSON \(expected ',' or ']' after row 1 at column 33; found "
                                            r"the end of the file\)",
    }
    for i, (text, pattern) in enumerate(cases.items()):
        path = tmp_path / f"c{i}.json"
        path.write_text(text)
        with pytest.raises(DatasetError, match=pattern):
            load_dataset(str(path), "qwen-vl-chat")


def test_qwen_vl_long_path_message_states_the_limit(tmp_path: Path, capsys) -> None:
    long_name = "/data/" + "d" * 300 + ".png"  # one name component too long for a file name: was "not a path"
    path = write_jsonl(tmp_path / "d.jsonl", [{"query": "q", "response": "r", "images": [long_name]}])
    code = main(["check-data", "--model_type", "qwen-vl-chat", "--dataset", str(path), "--check_images", "false"])
    out = capsys.readouterr().out
    assert code == 1 and "path_too_long 1" in out
    assert f"{path}:1: field 'images[0]': expected a local path or http(s) URL of at most 256 UTF-8 bytes" in out
    assert "found 310 bytes: '/data/ddd" in out


def test_wording_an_assistant_turn_and_yi_vl_entries(tmp_path: Path) -> None:
    conv = write_jsonl(tmp_path / "c.jsonl", [{"conversations": [{"from": "user", "value": "a"},
                                                                 {"from": "user", "value": "b"}]}])
    with pytest.raises(DatasetRowError, match="expected an assistant turn"):
        load_dataset(str(conv), "qwen-vl-chat", check_dataset_strategy="error")
    yi = write_jsonl(tmp_path / "y.jsonl", [{"query": "q", "response": "r", "history": [["a", "b"]],
                                            "images": ["a.png", "b.png", "c.png"]}])
    with pytest.raises(DatasetRowError) as e:
        load_dataset(str(yi), "yi-vl-6b-chat", check_dataset_strategy="error")
    assert str(e.value) == (f"{yi}:1: field 'images': expected one entry per turn in 'images' (2: history + query; "
                            "None for a turn without an image), or <image> tags in the text; found 3 entries")


@pytest.mark.parametrize("model_type", ["llava1d6-mistral-7b-instruct", "internlm-xcomposer2_5-7b-chat"])
def test_check_data_and_sft_name_a_missing_image_alike(tmp_path: Path, model_type: str) -> None:
    """check-data opens images up front; sft meets them in the template: the same field and reason code."""
    sample = Sample("What is it?", "red", images=(str(tmp_path / "missing.png"),), origin=RowOrigin("d.jsonl", 3, 2))
    with pytest.raises(DatasetRowError) as checked:
        RowChecker(model_type, check_images=True).check(sample)
    with pytest.raises(DatasetRowError) as encoded:
        encode_sample(stand_in_template(model_type), sample, RowChecker(model_type))
    assert (checked.value.field, checked.value.reason) == (encoded.value.field, encoded.value.reason) == (
        "images[0]", "image_missing")
    assert str(encoded.value).startswith("d.jsonl:3: field 'images[0]': expected a readable image; found image ")


def test_every_reason_code_is_in_the_one_vocabulary(data_dir: Path) -> None:
    rows = [
        {"query": "q", "response": 3}, {"prompt": "a"}, {"query": "a", "messages": []}, ["a"], {"query": "a"},
        {"query": "a", "response": " "}, {"conversations": [{"from": "bot", "value": "x"}]},
        {"query": "<img>img/a.png", "response": "r"}, {"query": "q", "response": "r", "image": "img/a.png"},
        {"query": "<img>img/a.png</img>", "response": "r", "images": ["img/b.png"]},
        {"query": "q", "response": "r", "images": ["img/missing.png"]},
        {"query": "q", "response": "<img>x.png</img>"},
        {"query": "q", "response": "r", "images": ["/x/" + "y" * 300]},
    ]
    path = data_dir / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{bad\n")
    report = load_dataset(str(path), "qwen-vl-chat", check_dataset_strategy="discard", check_images=True).report
    assert report.n_invalid == len(rows) + 1
    assert set(report.by_reason) <= set(REASONS), set(report.by_reason) - set(REASONS)
    assert len(report.by_reason) >= 12
