"""Named datasets: spec syntax, COCO registrations, offline samples, hub errors, and the swift 2.2.0 split."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image, ImageColor

from vlmref.datasets import named
from vlmref.datasets.named import (
    NAMED_DATASETS,
    SAMPLE_NAMES,
    DatasetSpec,
    NamedDataset,
    coco_images_row,
    coco_inline_row,
    get_named_dataset,
    load_named_dataset,
    load_named_split,
    parse_dataset_spec,
    split_dataset_arg,
)
from vlmref.datasets.split import sample_rows, split_sizes, train_val_split
from vlmref.errors import DatasetError, DatasetRowError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMREF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("USE_HF", raising=False)
    monkeypatch.delenv("FORCE_REDOWNLOAD", raising=False)


# ------------------------------------------------------------------------------------------------ spec parsing
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("coco-en-mini", DatasetSpec(None, "coco-en-mini")),
        ("coco-mini-en#100", DatasetSpec(None, "coco-mini-en", (), 100)),
        ("coco-en-2-mini#-1", DatasetSpec(None, "coco-en-2-mini")),
        ("HF::coco-en-mini", DatasetSpec("hf", "coco-en-mini")),
        ("ms::coco-en-mini#7", DatasetSpec("ms", "coco-en-mini", (), 7)),
        (" MS :: owner/ds : a / b #5 ", DatasetSpec("ms", "owner/ds", ("a", "b"), 5)),
        ("owner/ds:coco_2014_caption", DatasetSpec(None, "owner/ds", ("coco_2014_caption",))),
    ],
)
def test_parse_dataset_spec(text, expected):
    assert parse_dataset_spec(text) == expected


@pytest.mark.parametrize("text", ["x#abc", "x#0", "x#-2", "XX::x", "x:", "x:a//b", "#5", "HF::"])
def test_parse_dataset_spec_refusals(text):
    with pytest.raises(DatasetError, match=re.escape(repr(text))):
        parse_dataset_spec(text)


def test_spec_round_trips_and_aliases_resolve():
    for text in ["HF::coco-en-mini:a/b#5", "coco-mini-en-2#3", "MS::owner/ds"]:
        assert str(parse_dataset_spec(text)) == text
    assert get_named_dataset("coco-mini-en").name == "coco-en-mini"
    assert get_named_dataset("coco-mini-en-2").name == "coco-en-2-mini"
    with pytest.raises(DatasetError, match="unknown dataset 'nope'.*coco-en-mini"):
        get_named_dataset("nope")


def test_existing_paths_with_hash_and_colon_are_taken_whole(tmp_path):
    path = tmp_path / "my#data:v1.jsonl"
    path.write_text("{}\n")
    assert parse_dataset_spec(str(path)) == DatasetSpec(None, str(path))
    assert parse_dataset_spec(f"HF::{path}") == DatasetSpec("hf", str(path))
    assert parse_dataset_spec(f"{path}#10") == DatasetSpec(None, str(path), (), 10)
    assert parse_dataset_spec(str(path)).is_file
    with pytest.raises(DatasetError, match="local file"):
        load_named_dataset(str(path))


def test_split_dataset_arg(tmp_path):
    odd = tmp_path / "a b,c.jsonl"
    odd.write_text("{}\n")
    assert split_dataset_arg("coco-mini-en#100,coco-en-2-mini") == ["coco-mini-en#100", "coco-en-2-mini"]
    assert split_dataset_arg(["a, b", "c  d", ""]) == ["a", "b", "c", "d"]
    assert split_dataset_arg([str(odd), "x"]) == [str(odd), "x"]
    assert split_dataset_arg(None) == []


# ------------------------------------------------------------------------------------------------ registrations
def test_coco_registrations():
    for name, alias, fn, splits, size in [
        ("coco-en-mini", "coco-mini-en", coco_inline_row, ("validation",), 40504),
        ("coco-en-2-mini", "coco-mini-en-2", coco_images_row, ("validation",), 40504),
        ("coco-en", None, coco_inline_row, ("train", "validation"), 454617),
        ("coco-en-2", None, coco_images_row, ("train", "validation"), 454617),
    ]:
        info = NAMED_DATASETS.get(name)
        assert (info.ms_dataset_id, info.subsets, info.splits, info.size) == (
            "modelscope/coco_2014_caption", ("coco_2014_caption",), splits, size)
        assert info.row_fn is fn and info.hf_dataset_id is None and info.offline_sample in SAMPLE_NAMES
        if alias:
            assert NAMED_DATASETS.canonical(alias) == name
    with pytest.raises(ValueError, match="already registered"):
        NAMED_DATASETS.register("coco-mini-en", NAMED_DATASETS.get("coco-en-mini"))


def test_row_functions_cut_caption_at_first_double_ampersand():
    raw = {"image": {"bytes": None, "path": "/c/x.jpg"}, "caption": "one&&two&&three"}
    assert coco_inline_row(raw) == {
        "query": "Picture 1:<img>/c/x.jpg</img>\nplease describe the image.", "response": "one"}
    assert coco_images_row(raw) == {"query": "please describe the image.", "response": "one", "images": ["/c/x.jpg"]}
    with pytest.raises(DatasetRowError, match=re.escape("coco row 3: field 'image'")):
        coco_images_row({"image": {"bytes": b"..", "path": None}, "caption": "x"}, index=3)


# ------------------------------------------------------------------------------------------------------- split
def _expected_split(n, ratio, sample, seed):
    """Independent transcription of the documented algorithm (spec B.4, HF train_test_split, sample_dataset)."""
    rs = np.random.RandomState(seed)
    total = n if sample in (None, -1) else sample
    val = max(int(min(n, total) * ratio), 1)
    hf_seed = rs.randint(0, 2**31 - 1)
    perm = np.random.default_rng(hf_seed).permutation(n)
    test_idx, pool = list(perm[:val]), list(perm[val:])
    want = total - val
    if want == len(pool):
        return pool, test_idx
    picks = list(rs.permutation(len(pool))[:want])
    if want > len(pool):
        picks += list(rs.choice(len(pool), want - len(pool)))
    return [pool[i] for i in picks], test_idx


def test_split_sizes_for_coco_mini():
    assert split_sizes(40504, 0.01) == (40099, 405)
    train, val = train_val_split(range(40504), 0.01)
    assert (len(train), len(val)) == (40099, 405)
    assert sorted(train + val) == list(range(40504))


@pytest.mark.parametrize(("n", "ratio", "sample", "seed"),
                         [(40504, 0.01, None, 42), (40504, 0.01, 1000, 42), (24, 0.01, 50, 42), (100, 0.2, None, 0)])
def test_split_indices_follow_the_documented_algorithm(n, ratio, sample, seed):
    rows = list(range(n))
    assert train_val_split(rows, ratio, sample, seed) == _expected_split(n, ratio, sample, seed)
    assert train_val_split(rows, ratio, sample, seed) == train_val_split(rows, ratio, sample, seed)
    assert rows == list(range(n))


def test_split_matches_values_recorded_from_upstream():
    # Recorded by running ms-swift v2.2.0 _post_preprocess on a datasets 2.20.0 Dataset with numpy 1.26.4.
    train, val = train_val_split(list(range(40504)), 0.01, None, 42)
    assert val[:8] == [29805, 7480, 5967, 29247, 24982, 24688, 22558, 34783]
    assert train[:5] == [27313, 8040, 11318, 31058, 18980]
    train, val = train_val_split(list(range(24)), 0.01, 50, 42)
    assert (train[:8], val, len(train)) == ([15, 5, 22, 18, 11, 1, 0, 7], [6], 49)
    assert train_val_split(list(range(40504)), 0.01, None, 43) != train_val_split(list(range(40504)), 0.01, None, 42)


def test_oversampling_and_edge_ratios():
    rows = list("abcdef")
    picked = sample_rows(rows, 15, 3)
    rs = np.random.RandomState(3)
    first = list(rs.permutation(6))
    assert picked == [rows[i] for i in first + list(rs.choice(6, 9))]
    assert sorted(picked[:6]) == rows and len(picked) == 15
    rs = np.random.RandomState(0)
    before = rs.get_state()[1].copy()
    assert sample_rows(rows, -1, rs) == rows and sample_rows(rows, 6, rs) == rows and sample_rows(rows, None, rs) == rows
    assert (rs.get_state()[1] == before).all()  # nothing drawn, as upstream
    assert train_val_split(rows, 0.0, 4, 1) == (sample_rows(rows, 4, 1), None)
    assert train_val_split(rows, 1.0, None, 1) == (None, sample_rows(rows, 6, 1))
    with pytest.raises(ValueError, match="exceeds"):
        train_val_split(rows, 1.0, 7, 1)
    with pytest.raises(ValueError, match="no training rows"):
        train_val_split(rows, 0.5, 1, 1)
    with pytest.raises(ValueError, match="cannot hold out"):
        train_val_split(["x"], 0.01)


# ------------------------------------------------------------------------------------------------ offline samples
@pytest.fixture
def writes(monkeypatch):
    calls: list[str] = []
    real = named.atomic_write_bytes

    def spy(path, data):
        calls.append(path)
        real(path, data)

    monkeypatch.setattr(named, "atomic_write_bytes", spy)
    return calls


def _probe(image, x, y):
    return image.getpixel((int(x), int(y)))


def test_sample_generation_decodes_and_matches_captions(writes, tmp_path):
    raw = named.sample_raw_rows("coco-en-2-mini-sample")
    folder = tmp_path / "cache" / "datasets" / "coco-en-2-mini-sample"
    assert len(raw) == 24 and sorted(writes) == sorted(r["image"]["path"] for r in raw)
    assert sorted(os.listdir(folder)) == sorted(os.path.basename(p) for p in writes)  # no temp files left
    sizes, pairs = set(), set()
    for row in raw:
        caption = row["caption"].split("&&")[0]
        colour, shape, background = re.fullmatch(r"a (\w+) (circle|square|triangle) on a (\w+) background",
                                                 caption).groups()
        with Image.open(row["image"]["path"]) as image:
            image.load()
        w, h = image.size
        sizes.add((w, h))
        pairs.add((colour, shape))
        cx, cy, r = w // 2, h // 2, min(w, h) // 4
        fg, bg = ImageColor.getrgb(colour), ImageColor.getrgb(background)
        assert fg != bg and _probe(image, cx, cy) == fg and _probe(image, 2, 2) == bg
        top_left, bottom_left = _probe(image, cx - 0.9 * r, cy - 0.9 * r), _probe(image, cx - 0.9 * r, cy + 0.9 * r)
        assert (top_left == fg, bottom_left == fg) == {"square": (True, True), "circle": (False, False),
                                                       "triangle": (False, True)}[shape]
    assert sizes == {(640, 480), (480, 640), (336, 336), (500, 375)} and len(pairs) == 24
    assert any("&&" in row["caption"] for row in raw)


def test_sample_files_are_reused_and_regenerated_when_missing(writes):
    raw = named.sample_raw_rows("coco-en-mini-sample")
    stamps = {r["image"]["path"]: os.stat(r["image"]["path"]).st_mtime_ns for r in raw}
    writes.clear()
    assert named.sample_raw_rows("coco-en-mini-sample") == raw and writes == []
    assert all(os.stat(p).st_mtime_ns == t for p, t in stamps.items())
    victim = raw[5]["image"]["path"]
    os.unlink(victim)
    named.sample_raw_rows("coco-en-mini-sample")
    assert writes == [victim] and os.path.isfile(victim)


def test_sample_rows_go_through_the_real_row_functions():
    inline = load_named_dataset("coco-en-mini-sample")
    images = load_named_dataset("coco-en-2-mini-sample")
    assert len(inline) == len(images) == 24
    for a, b in zip(inline, images, strict=True):
        assert set(a) == {"query", "response"} and set(b) == {"query", "response", "images"}
        path = a["query"].removeprefix("Picture 1:<img>").removesuffix("</img>\nplease describe the image.")
        assert os.path.isfile(path) and os.path.basename(path) == os.path.basename(b["images"][0])
        assert a["response"] == b["response"] and "&&" not in b["response"]
        assert b["response"].endswith("background")
    picked = load_named_dataset("coco-en-2-mini-sample#30", dataset_seed=42)
    assert picked == sample_rows(images, 30, 42) and len(picked) == 30
    train, val = load_named_split("coco-en-2-mini-sample", dataset_test_ratio=0.01)
    assert (len(train), len(val)) == (23, 1)
    with pytest.raises(DatasetError, match="only the subset"):
        load_named_dataset("coco-en-mini-sample:other")


# ------------------------------------------------------------------------------------------------ hub loading
def _fake_modelscope(monkeypatch, load):
    package = types.ModuleType("modelscope")
    module = types.ModuleType("modelscope.msdatasets")
    module.MsDataset = types.SimpleNamespace(load=load)
    package.msdatasets = module
    monkeypatch.setitem(sys.modules, "modelscope", package)
    monkeypatch.setitem(sys.modules, "modelscope.msdatasets", module)


def test_modelscope_absent_names_the_offline_samples(monkeypatch):
    monkeypatch.setitem(sys.modules, "modelscope", None)
    monkeypatch.setitem(sys.modules, "modelscope.msdatasets", None)
    with pytest.raises(DatasetError) as info:
        load_named_dataset("coco-mini-en#10")
    message = str(info.value)
    assert "modelscope" in message and "pip install" in message
    assert all(name in message for name in SAMPLE_NAMES)


def test_hub_unreachable_is_a_dataset_error(monkeypatch):
    def load(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'www.modelscope.cn'")

    _fake_modelscope(monkeypatch, load)
    with pytest.raises(DatasetError, match="ModelScope hub: ConnectionError.*coco-en-2-mini-sample"):
        load_named_split("coco-en-2-mini")


def test_real_loader_with_a_fake_hub(monkeypatch):
    calls, datasets = [], []

    class FakeHfDataset:
        def __init__(self, split):
            self._info = types.SimpleNamespace(features=types.SimpleNamespace(_column_requires_decoding={"image": True}))
            self.rows = [{"image": {"bytes": None, "path": f"/hub/{split}/{i}.jpg"}, "caption": f"c{i}&&x"}
                         for i in range(3)]
            datasets.append(self)

        def __iter__(self):
            return iter(self.rows)

    def load(dataset_id, subset_name, split, download_mode):
        calls.append((dataset_id, subset_name, split, download_mode))
        return types.SimpleNamespace(to_hf_dataset=lambda: FakeHfDataset(split))

    _fake_modelscope(monkeypatch, load)
    rows = load_named_dataset("MS::coco-en")
    assert calls == [("modelscope/coco_2014_caption", "coco_2014_caption", split, "reuse_dataset_if_exists")
                     for split in ("train", "validation")]
    assert all(d._info.features._column_requires_decoding["image"] is False for d in datasets)
    assert [r["query"] for r in rows[:1]] == ["Picture 1:<img>/hub/train/0.jpg</img>\nplease describe the image."]
    assert [r["response"] for r in rows] == ["c0", "c1", "c2"] * 2 and rows[3]["query"].count("/hub/validation/0")


def test_hf_hub_is_refused(monkeypatch):
    with pytest.raises(DatasetError, match="registers no HF id.*coco-en-mini-sample"):
        load_named_dataset("HF::coco-mini-en")
    monkeypatch.setenv("USE_HF", "1")
    with pytest.raises(DatasetError, match="use_hf: True"):
        load_named_dataset("coco-en-2-mini")
    assert len(load_named_dataset("coco-en-2-mini-sample#2")) == 2  # samples are local whatever the hub


def test_pure_layer_imports_no_torch_or_hub_packages():
    code = ("import sys, vlmref.datasets.named, vlmref.datasets.split; "
            "print(sorted(m for m in ('torch', 'modelscope', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert isinstance(NAMED_DATASETS.get("coco-en-mini-sample"), NamedDataset)
