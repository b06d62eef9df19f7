"""Per-model row rules, --check_dataset_strategy, the length check and `vlmref check-data`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from stand_in import golden_specials

from vlmref.cli.main import main
from vlmref.datasets.loader import encode_sample, load_dataset
from vlmref.datasets.rules import RowChecker
from vlmref.datasets.sample import RowOrigin, Sample
from vlmref.errors import DatasetRowError
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template
from vlmref.testing.tiny_tokenizer import TinyTokenizer

ORIGIN = RowOrigin("data.jsonl", 7, 6)
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def stand_in_template(model_type: str, **kw):
    template_type = MODELS.get(model_type).template
    ids, bos, eos, pad = golden_specials(template_type)
    return get_template(template_type, TinyTokenizer(ids, bos=bos, eos=eos, pad=pad), **kw)


@pytest.fixture
def img(tmp_path: Path) -> str:
    path = tmp_path / "a.png"
    Image.new("RGB", (32, 32), "red").save(path)
    return str(path)


def check(model_type: str, sample: Sample, **kw) -> DatasetRowError | None:
    try:
        RowChecker(model_type, **kw).check(sample)
    except DatasetRowError as err:
        return err
    return None


def s(query="q", response="r", history=(), images=(), system=None) -> Sample:
    return Sample(query, response, tuple(history), system, tuple(images), origin=ORIGIN)


@pytest.mark.parametrize(
    ("model_type", "sample", "field", "reason"),
    [
        ("cogvlm-17b-instruct", s(), "images", "image_count"),
        ("cogvlm-17b-instruct", s(images=["a.png", "b.png"]), "images", "image_count"),
        ("cogvlm-17b-instruct", s(system="be brief", images=["a.png"]), "system", "system_unsupported"),
        ("llava1d6-mistral-7b-instruct", s(images=["a.png"], history=[("h", "r")]), "history", "multi_turn"),
        ("llava1d6-mistral-7b-instruct", s(), "images", "image_count"),
        ("llama3-llava-next-8b", s(query="<image><image>", images=["a.png", "b.png"]), "images", "image_count"),
        ("yi-vl-6b-chat", s(query="<image><image>x", images=["a.png", "b.png"]), "query", "images_per_turn"),
        ("yi-vl-6b-chat", s(images=["a.png", "b.png"]), "images", "images_per_turn"),  # one entry per turn
        ("yi-vl-6b-chat", s(query="<image>x", history=[("<image><image>h", "r")], images=["a", "b", "c"]),
         "history[0]", "images_per_turn"),
        ("yi-vl-6b-chat", s(response="see <image>", images=["a.png"]), "response", "tag_in_reply"),
        ("qwen-vl-chat", s(response="<img>x.png</img>"), "response", "tag_in_reply"),
        ("qwen-vl-chat", s(images=[PNG_BASE64]), "images[0]", "image_kind"),
        ("qwen-vl-chat", s(images=["data:image/png;base64," + PNG_BASE64]), "images[0]", "image_kind"),
        ("qwen-vl-chat", s(images=["/data/" + "/".join(["d" * 50] * 6) + ".png"]), "images[0]", "path_too_long"),
        ("qwen-vl-chat", s(query="<image>", images=["a.png", "b.png"]), "images", "tag_count"),
    ],
)
def test_rule_violations_name_row_field_and_reason(model_type, sample, field, reason) -> None:
    err = check(model_type, sample)
    assert err is not None, "expected a violation"
    assert (err.source, err.line, err.field, err.reason) == ("data.jsonl", 7, field, reason)
    assert str(err).startswith(f"data.jsonl:7: field {field!r}: expected ")


@pytest.mark.parametrize(
    ("model_type", "sample"),
    [
        ("cogvlm-17b-instruct", s(images=["a.png"])),
        ("cogvlm-17b-instruct", s(query="<image>q", history=[("h", "r")], images=["a.png"])),  # image in a later turn
        ("llava-next-110b", s(images=["a.png"])),
        ("yi-vl-6b-chat", s()),  # text only
        ("yi-vl-6b-chat", s(history=[("h", "r"), ("h2", "r2")], images=["a.png", None, "c.png"])),
        ("yi-vl-34b-chat", s(query="<image>x", history=[("<image>h", "r")], images=["a.png", "b.png"])),
        ("qwen-vl-chat", s(query="<image><image><image>x", history=[("<image>h", "r")], images=["a", "b", "c", "d"])),
        ("internlm-xcomposer2-7b-chat", s(history=[("h", "r")])),
        ("internlm-xcomposer2_5-7b-chat", s(query="<image><image>x", images=["a.png", "b.png"])),
    ],
)
def test_documented_shapes_pass(model_type, sample) -> None:
    assert check(model_type, sample) is None


def test_image_files_are_checked_on_request(tmp_path: Path, img: str) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert check("cogvlm-17b-instruct", s(images=[img]), check_images=True) is None
    missing = check("cogvlm-17b-instruct", s(images=[str(tmp_path / "nope.png")]), check_images=True)
    assert (missing.field, missing.reason) == ("images[0]", "image_missing") and "nope.png" in str(missing)
    corrupt = check("cogvlm-17b-instruct", s(images=[str(tmp_path / "bad.png")]), check_images=True)
    assert (corrupt.field, corrupt.reason) == ("images[0]", "image_corrupt")
    assert check("cogvlm-17b-instruct", s(images=[str(tmp_path / "nope.png")])) is None  # not opened by default


def test_too_long_rows_are_counted_under_delete(img: str) -> None:
    template = stand_in_template("yi-vl-6b-chat", max_length=1600)  # the stand-in spends one id per byte
    short, long = s(images=[img]), s(query="x" * 300, images=[img])
    assert check("yi-vl-6b-chat", short, template=template) is None
    err = check("yi-vl-6b-chat", long, template=template)
    assert (err.field, err.reason) == ("<encoded>", "too_long") and "1024 of them image positions" in str(err)
    left = stand_in_template("yi-vl-6b-chat", max_length=1600, truncation_strategy="truncation_left")
    assert check("yi-vl-6b-chat", long, template=left) is None


def test_encode_sample_names_the_row(img: str) -> None:
    template = stand_in_template("cogvlm-17b-instruct", max_length=100)
    with pytest.raises(DatasetRowError) as e:
        encode_sample(template, s(images=[img]))
    assert (e.value.source, e.value.line, e.value.reason) == ("data.jsonl", 7, "too_long")
    with pytest.raises(DatasetRowError) as e:
        encode_sample(stand_in_template("cogvlm-17b-instruct"), s(system="x", images=[img]))
    assert e.value.reason == "system_unsupported"


# ---- strategies ------------------------------------------------------------------------------------------------------
@pytest.fixture
def mixed(tmp_path: Path, img: str) -> Path:
    rows = [
        {"query": "ok 1", "response": "r", "images": [img]},
        {"query": "no image", "response": "r"},
        {"query": "ok 2", "response": "r", "images": [img]},
        {"query": "two", "response": "r", "images": [img, img]},
        {"query": "ok 3", "response": "r", "images": [img]},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    return path


def test_strategy_error_stops_at_the_first_bad_row(mixed: Path) -> None:
    with pytest.raises(DatasetRowError) as e:
        load_dataset(str(mixed), "cogvlm-17b-instruct", check_dataset_strategy="error")
    assert e.value.line == 6 and e.value.reason == "invalid_json"  # an unparseable row stops every strategy but discard
    ok = mixed.with_name("ok.jsonl")
    ok.write_text("".join(line + "\n" for line in mixed.read_text().splitlines()[:5]))
    with pytest.raises(DatasetRowError) as e:
        load_dataset(str(ok), "cogvlm-17b-instruct", check_dataset_strategy="error")
    assert (e.value.line, e.value.reason) == (2, "image_count")


def test_strategy_discard_counts_every_dropped_row(mixed: Path) -> None:
    loaded = load_dataset(str(mixed), "cogvlm-17b-instruct", check_dataset_strategy="discard")
    assert [x.query for x in loaded.train] == ["ok 1", "ok 2", "ok 3"]
    counts = loaded.report.sources[str(mixed)]
    assert (counts.rows, counts.valid, counts.invalid, counts.discarded) == (6, 3, 3, 3)
    assert loaded.report.by_reason == {"image_count": 2, "invalid_json": 1}
    summary = loaded.report.summary()
    assert "6 rows, 3 valid, 3 invalid (3 discarded)" in summary and f"{mixed}:4: field 'images'" in summary


def test_strategy_warning_reports_and_keeps(mixed: Path) -> None:
    ok = mixed.with_name("ok.jsonl")
    ok.write_text("".join(line + "\n" for line in mixed.read_text().splitlines()[:5]))
    loaded = load_dataset(str(ok), "cogvlm-17b-instruct", check_dataset_strategy="warning")
    assert len(loaded.train) == 5 and loaded.report.n_invalid == 2
    assert loaded.report.sources[str(ok)].kept_invalid == 2


def test_strategy_none_checks_nothing_up_front(mixed: Path) -> None:
    ok = mixed.with_name("ok.jsonl")
    ok.write_text("".join(line + "\n" for line in mixed.read_text().splitlines()[:5]))
    loaded = load_dataset(str(ok), "cogvlm-17b-instruct")
    assert len(loaded.train) == 5 and loaded.report.sources[str(ok)].unchecked == 5
    template, checker = stand_in_template("cogvlm-17b-instruct"), RowChecker("cogvlm-17b-instruct")
    encode_sample(template, loaded.train[0], checker=checker)
    with pytest.raises(DatasetRowError) as e:  # ... the bad row names itself when it is encoded
        encode_sample(template, loaded.train[1], checker=checker)
    assert (e.value.line, e.value.reason) == (2, "image_count")


def test_every_row_is_accounted_for(mixed: Path) -> None:
    for strategy in ("discard", "warning"):
        path = mixed if strategy == "discard" else mixed.with_name("w.jsonl")
        if strategy == "warning":
            path.write_text("".join(line + "\n" for line in mixed.read_text().splitlines()[:5]))
        loaded = load_dataset(str(path), "cogvlm-17b-instruct", check_dataset_strategy=strategy, dataset_test_ratio=0.4)
        c = loaded.report.sources[str(path)]
        assert c.rows == c.valid + c.invalid
        assert len(loaded.train) + len(loaded.val) == c.valid + c.kept_invalid


def test_named_sample_with_split(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VLMREF_CACHE", str(tmp_path))
    loaded = load_dataset("coco-en-2-mini-sample", "llava1d6-mistral-7b-instruct", check_dataset_strategy="error",
                          dataset_test_ratio=0.1, check_images=True)
    assert (len(loaded.train), len(loaded.val)) == (22, 2)
    assert all(x.query == "please describe the image." and x.n_images == 1 for x in loaded.train + loaded.val)
    inline = load_dataset("coco-en-mini-sample#5", "qwen-vl-chat",
                          check_dataset_strategy="error")
    assert len(inline.train) == 5 and all(x.query.startswith("Picture 1:<image>\n") for x in inline.train)


def test_unknown_strategy_is_refused(mixed: Path) -> None:
    with pytest.raises(ValueError, match="check_dataset_strategy must be one of"):
        load_dataset(str(mixed), "qwen-vl-chat", check_dataset_strategy="drop")


# ---- vlmref check-data -----------------------------------------------------------------------------------------------
def test_check_data_cli(mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out_json = tmp_path / "report.json"
    code = main(["check-data", "--model_type", "cogvlm-17b-instruct", "--dataset", str(mixed), "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 1
    assert f"{mixed}:2: field 'images'" in out and f"{mixed}:4: field 'images'" in out and f"{mixed}:6: field '<row>'" in out
    assert "6 rows, 3 valid, 3 invalid" in out and "discarded" not in out
    report = json.loads(out_json.read_text())
    assert report["invalid_by_reason"] == {"image_count": 2, "invalid_json": 1}
    assert code == 1
    good = tmp_path / "good.jsonl"
    good.write_text(mixed.read_text().splitlines()[0] + "\n")
    assert main(["check-data", "--model_type", "cogvlm-17b-instruct", "--dataset", str(good)]) == 0


def test_check_data_length_needs_a_tokenizer(mixed: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("VLMREF_TOKENIZERS_DIR", str(tmp_path / "none"))
    code = main(["check-data", "--model_type", "cogvlm-17b-instruct", "--dataset", str(mixed), "--max_length", "64"])
    assert code == 2 and "needs cogvlm-17b-instruct's tokenizer" in capsys.readouterr().err


@pytest.mark.real_tokenizer
def test_check_data_length_with_the_real_tokenizer(tokenizers_root, mixed: Path, capsys) -> None:
    strict = ["--max_length_counts_images", "true"]  # the default counts text tokens only (as sft)
    code = main(["check-data", "--model_type", "cogvlm-17b-instruct", "--dataset", str(mixed), "--max_length", "1300",
                 *strict])
    out = capsys.readouterr().out
    assert code == 1 and "too_long" not in out  # BOS + 1227 vision positions + ~10 text tokens fit
    code = main(["check-data", "--model_type", "cogvlm-17b-instruct", "--dataset", str(mixed), "--max_length", "1200",
                 *strict])
    out = capsys.readouterr().out
    assert "too_long 3" in out and "1227 of them image positions" in out
