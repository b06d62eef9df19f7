"""Every documented dataset format, for every model type, loads from a file on disk and normalises to one Sample."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image
from stand_in import golden_specials

from vlmref.datasets.formats import normalise_row, read_rows
from vlmref.datasets.loader import load_dataset
from vlmref.datasets.rules import RowChecker
from vlmref.datasets.sample import Sample
from vlmref.errors import DatasetError, DatasetRowError
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

MODEL_TYPES = MODELS.names()
INLINE_MODELS = {"qwen-vl-chat", "internlm-xcomposer2-7b-chat", "internlm-xcomposer2_5-7b-chat"}


def write_rows(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as .json, .jsonl or .csv (lists/dicts in CSV cells as JSON text)."""
    if path.suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        fields = sorted({k for r in rows for k in r})
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in rows:
                w.writerow({k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v)
                            for k, v in r.items()})
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    for name, size, colour in (("a.png", (64, 48), "red"), ("b.png", (40, 40), "blue"), ("c.png", (30, 90), "green")):
        Image.new("RGB", size, colour).save(tmp_path / "img" / name)
    return tmp_path


def one_image_rows() -> dict[str, dict]:
    """The same single-turn, one-image conversation in each documented row format."""
    q, r = "Describe the picture.", "A red rectangle."
    return {
        "query_response": {"query": q, "response": r, "images": ["img/a.png"]},
        "query_response_str_image": {"query": q, "response": r, "images": "img/a.png"},
        "conversations": {"conversations": [{"from": "user", "value": q}, {"from": "assistant", "value": r}],
                          "images": ["img/a.png"]},
        "conversations_human_gpt": {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": r}],
                                    "images": ["img/a.png"]},
        "messages": {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": r}],
                     "images": ["img/a.png"]},
    }


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
@pytest.mark.parametrize("fmt", list(one_image_rows()))
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_format_loads_for_every_model(data_dir: Path, model_type: str, fmt: str, suffix: str) -> None:
    path = write_rows(data_dir / f"train{suffix}", [one_image_rows()[fmt]])
    loaded = load_dataset(str(path), model_type, check_dataset_strategy="error")
    assert loaded.report.ok and len(loaded.train) == 1 and loaded.val == []
    sample = loaded.train[0]
    assert sample == Sample("Describe the picture.", "A red rectangle.", images=(str(data_dir / "img" / "a.png"),))
    assert sample.origin.source == str(path) and sample.origin.line == (2 if suffix == ".json" else 1 if suffix == ".jsonl" else 2)
    template_type = MODELS.get(model_type).template
    ids, bos, eos, pad = golden_specials(template_type)
    enc = get_template(template_type, TinyTokenizer(ids, bos=bos, eos=eos, pad=pad)).encode(sample.to_example())
    assert len(enc["image_spans"]) == 1 and len(enc["input_ids"]) == len(enc["labels"])


@pytest.mark.parametrize("model_type", sorted(INLINE_MODELS))
@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_inline_img_tags_equal_the_images_field(data_dir: Path, model_type: str, suffix: str) -> None:
    inline = {"conversations": [{"from": "user", "value": "Picture 1:<img>img/a.png</img>\nWhat is it?"},
                                {"from": "assistant", "value": "Red."}]}
    column = {"query": "Picture 1:<image>\nWhat is it?", "response": "Red.", "images": ["img/a.png"]}
    a = load_dataset(str(write_rows(data_dir / f"inline{suffix}", [inline])), model_type, check_dataset_strategy="error")
    b = load_dataset(str(write_rows(data_dir / f"column{suffix}", [column])), model_type, check_dataset_strategy="error")
    assert a.train == b.train
    assert a.train[0].images == (str(data_dir / "img" / "a.png"),)


def test_seed_examples_load(data_dir: Path) -> None:
    """The custom-dataset examples of the five seed documents, with real image files."""
    qwen = [
        {"conversations": [{"from": "user", "value": "Picture 1:<img>img/a.png</img>\n11111"},
                           {"from": "assistant", "value": "22222"}]},
        {"conversations": [
            {"from": "user", "value": "Picture 1:<img>img/a.png</img>\nPicture 2:<img>img/b.png</img>\nPicture 3:<img>img/c.png</img>\naaaaa"},
            {"from": "assistant", "value": "bbbbb"},
            {"from": "user", "value": "Picture 1:<img>img/a.png</img>\nccccc"},
            {"from": "assistant", "value": "ddddd"}]},
        {"conversations": [{"from": "user", "value": "AAAAA"}, {"from": "assistant", "value": "BBBBB"},
                           {"from": "user", "value": "CCCCC"}, {"from": "assistant", "value": "DDDDD"}]},
    ]
    xcomposer = json.loads(json.dumps(qwen).replace("Picture 1:", "").replace("Picture 2:", "").replace("Picture 3:", ""))
    single = [{"query": "55555", "response": "66666", "images": ["img/a.png"]},
              {"query": "eeeee", "response": "fffff", "images": ["img/b.png"]}]
    yi = [{"query": "55555", "response": "66666", "images": ["img/a.png"]},
          {"query": "eeeee", "response": "fffff", "history": [], "images": ["img/b.png"]},
          {"query": "EEEEE", "response": "FFFFF", "history": [["AAAAA", "BBBBB"], ["CCCCC", "DDDDD"]],
           "images": ["img/a.png", "img/b.png", "img/c.png"]}]
    cases = {"qwen-vl-chat": ("qwen.json", qwen), "internlm-xcomposer2-7b-chat": ("ixc.json", xcomposer),
             "cogvlm-17b-instruct": ("cog.jsonl", single), "llava1d6-mistral-7b-instruct": ("llava.jsonl", single),
             "yi-vl-6b-chat": ("yi.jsonl", yi)}
    for model_type, (name, rows) in cases.items():
        loaded = load_dataset(str(write_rows(data_dir / name, rows)), model_type, check_dataset_strategy="error",
                              check_images=True)
        assert [s.n_images for s in loaded.train] == [len(r.get("images", [])) or str(r).count("<img>") for r in rows]
    second = load_dataset(str(data_dir / "qwen.json"), "qwen-vl-chat").train[1]
    assert second.history[0][0].count("<image>") == 3 and second.query.startswith("Picture 1:<image>\n")


def test_json_rows_carry_their_line(data_dir: Path) -> None:
    path = data_dir / "d.json"
    path.write_text('[\n  {"query": "a", "response": "b"},\n\n  {"query": "c",\n   "response": "d"}\n]\n')
    assert [r.origin.line for r in read_rows(str(path))] == [2, 4]


def test_csv_multiline_cell_keeps_row_start_line(data_dir: Path) -> None:
    path = data_dir / "d.csv"
    path.write_text('query,response\n"two\nlines",x\nq,\n', encoding="utf-8")
    rows = list(read_rows(str(path)))
    assert [r.origin.line for r in rows] == [2, 4]
    with pytest.raises(DatasetRowError) as e:
        normalise_row(rows[1])
    assert (e.value.line, e.value.field, e.value.reason) == (4, "response", "empty_response")


# ---- bad input: each class names the file, line and field ------------------------------------------------------------
BAD_ROWS = [
    ('{"query": "a", "response": 3}', "response", "wrong_type"),
    ('{"query": ["a"], "response": "b"}', "query", "wrong_type"),
    ('{"query": "a"}', "response", "missing_response"),
    ('{"query": "a", "response": "  "}', "response", "empty_response"),
    ('{"prompt": "a", "completion": "b"}', "<row>", "unknown_format"),
    ('{"query": "a", "response": "b", "messages": []}', "<row>", "ambiguous_format"),
    ('["a", "b"]', "<row>", "not_an_object"),
    ('{"query": "a", "response": "b", "history": [["x"]]}', "history[0]", "wrong_type"),
    ('{"query": "a", "response": "b", "history": "not a list"}', "history", "wrong_type"),
    ('{"query": "a", "response": "b", "system": 5}', "system", "wrong_type"),
    ('{"query": "a", "response": "b", "images": [5]}', "images[0]", "wrong_type"),
    ('{"query": "a", "response": "b", "images": {"path": "x"}}', "images", "wrong_type"),
    ('{"conversations": [{"from": "bot", "value": "x"}]}', "conversations[0].from", "bad_role"),
    ('{"conversations": [{"from": "assistant", "value": "x"}]}', "conversations[0].from", "bad_role"),
    ('{"conversations": [{"from": "user", "value": "x"}, {"from": "user", "value": "y"}]}', "conversations[1].from", "bad_role"),
    ('{"conversations": [{"from": "user", "value": "x"}, {"from": "system", "value": "y"}]}', "conversations[1].from", "bad_role"),
    ('{"conversations": [{"from": "user", "text": "x"}]}', "conversations[0]", "wrong_type"),
    ('{"conversations": []}', "conversations", "wrong_type"),
    ('{"messages": [{"role": "user", "content": [{"type": "text"}]}, {"role": "assistant", "content": "b"}]}',
     "messages[0].content", "wrong_type"),
    ('{"query": "<img>a.png</img>x", "response": "b"}', "query", "inline_tags"),
    ('{bad json', "<row>", "invalid_json"),
]
BAD_REASONS = {
    "wrong_type", "missing_response", "empty_response", "unknown_format", "ambiguous_format", "not_an_object",
    "bad_role", "inline_tags", "invalid_json",
}


@pytest.mark.parametrize(("line", "field", "reason"), BAD_ROWS)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, line: str, field: str, reason: str) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"query": "ok", "response": "fine"}\n\n' + line + "\n")
    with pytest.raises(DatasetRowError) as e:
        load_dataset(str(path), "llava1d6-mistral-7b-instruct", check_dataset_strategy="error")
    err = e.value
    assert (err.source, err.line, err.field, err.reason) == (str(path), 3, field, reason)
    assert str(err).startswith(f"{path}:3: field {field!r}: expected ")
    assert "; found " in str(err)


def test_bad_row_table_covers_every_parse_reason() -> None:
    assert {r for _, _, r in BAD_ROWS} == BAD_REASONS


def test_inline_tags_and_images_field_together_are_refused(data_dir: Path) -> None:
    path = write_rows(data_dir / "d.jsonl", [{"query": "<img>img/a.png</img>hi", "response": "x", "images": ["img/b.png"]}])
    with pytest.raises(DatasetRowError) as e:
        load_dataset(str(path), "qwen-vl-chat", check_dataset_strategy="error")
    assert e.value.reason == "ambiguous_images" and e.value.field == "images"


@pytest.mark.parametrize("name", ["data.txt", "data.parquet", "data"])
def test_unsupported_file_types(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("x")
    with pytest.raises(DatasetError, match="unsupported dataset file type"):
        list(read_rows(str(tmp_path / name)))


def test_json_must_be_an_array_and_valid(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"query": "a", "response": "b"}')
    with pytest.raises(DatasetError, match="one JSON array"):
        list(read_rows(str(tmp_path / "a.json")))
    (tmp_path / "b.json").write_text('[\n{"query": "a", "response": "b"},\n{"query": \n]')
    with pytest.raises(DatasetError, match=r"b\.json:4: invalid JSON"):
        list(read_rows(str(tmp_path / "b.json")))


def test_csv_row_with_extra_cells(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("query,response\na,b\nc,d,e\n")
    with pytest.raises(DatasetRowError) as e:
        load_dataset(str(tmp_path / "d.csv"), "qwen-vl-chat", check_dataset_strategy="error")
    assert (e.value.line, e.value.reason) == (3, "wrong_type")


def test_csv_cells_hold_history_images_and_empty_system(data_dir: Path) -> None:
    path = data_dir / "d.csv"
    path.write_text('query,response,history,images,system\nq,r,"[[""h1"", ""r1""]]","[""img/a.png"", null]",\n')
    (sample,) = load_dataset(str(path), "yi-vl-6b-chat", check_dataset_strategy="error").train
    assert sample == Sample("q", "r", history=(("h1", "r1"),), images=(str(data_dir / "img" / "a.png"), None))


def test_urls_base64_and_absolute_paths_are_kept(tmp_path: Path) -> None:
    b64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    refs = ["http://127.0.0.1/x.png", "data:image/png;base64," + b64, b64, "/abs/p.png", "~/p.png"]
    path = write_rows(tmp_path / "d.jsonl", [{"query": "q", "response": "r", "images": [m]} for m in refs])
    got = [s.images[0] for s in load_dataset(str(path), "cogvlm-17b-instruct").train]
    assert got[:4] == refs[:4] and got[4] == str(Path("~/p.png").expanduser())


def test_unknown_columns_are_reported_not_dropped_silently(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.jsonl", [{"id": 1, "query": "q", "response": "r"}, {"id": 2, "query": "q", "response": "r"}])
    report = load_dataset(str(path), "qwen-vl-chat").report
    assert report.ignored_fields == {"id": 2} and "id (2 rows)" in report.summary()


def test_row_checker_model_rule_table() -> None:
    """The rules come from the registry; spot-check that each family's rule is the documented one."""
    checkers = {m: RowChecker(m) for m in MODEL_TYPES}
    assert not checkers["llava1d6-mistral-7b-instruct"].rules.multi_turn
    assert checkers["cogvlm-17b-instruct"].rules.min_images == checkers["cogvlm-17b-instruct"].rules.max_images == 1
    assert checkers["yi-vl-6b-chat"].rules.max_images_per_turn == 1
    assert checkers["qwen-vl-chat"].rules.max_images is None and checkers["qwen-vl-chat"].inline_images
