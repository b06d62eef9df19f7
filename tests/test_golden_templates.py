"""Every golden case: real-tokenizer ids when the tokenizer files are present; template logic always."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pytest

from vlmref.errors import VlmrefError
from vlmref.templates import TEMPLATES
from vlmref.testing.golden import (
    SCENARIO_NAMES,
    case_template,
    expected_for,
    load_golden_tokenizer,
    segments_view,
    tiny_tokenizer_for,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = sorted((GOLDEN / "templates").glob("*/*.json"))
APPLICABLE = [p for p in CASES if "not_applicable" not in json.loads(p.read_text())]


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@functools.cache
def _real_tokenizer(template_type: str, root: str):
    return load_golden_tokenizer(template_type, Path(root))


@pytest.mark.golden
@pytest.mark.real_tokenizer
@pytest.mark.parametrize("path", APPLICABLE, ids=_id)
def test_golden_case_real_tokenizer(path: Path, tokenizers_root: Path) -> None:
    case = json.loads(path.read_text())
    tokenizer = _real_tokenizer(case["meta"]["template_type"], str(tokenizers_root))
    template = case_template(case, tokenizer, GOLDEN)
    assert expected_for(template, case["input"]["example"]) == case["expected"]


@pytest.mark.golden
@pytest.mark.parametrize("path", APPLICABLE, ids=_id)
def test_golden_case_template_logic(path: Path) -> None:
    """Without the real tokenizer: rendering, segments and loss flags, image count and size per image."""
    case = json.loads(path.read_text())
    expected = case["expected"]
    template = case_template(case, tiny_tokenizer_for(case), GOLDEN)
    example = case["input"]["example"]
    if "error" in expected:
        if expected["error"]["type"] == "SequenceTooLongError":
            pytest.skip("the length depends on the real tokenizer")
        with pytest.raises(VlmrefError) as err:
            template.encode(example)
        assert type(err.value).__name__ == expected["error"]["type"]
        assert str(err.value) == expected["error"]["message"]
        return
    view = segments_view(template, example)
    for key in ("rendered", "mask_view", "segments"):
        assert view[key] == expected[key], key
    if "max_length" not in case["input"]:
        enc = template.encode(example)
        assert [n for _, n in enc["image_spans"]] == [n for _, n in expected["image_spans"]]
        assert [str(m) for m in enc["images"]] == expected["images"]
        assert enc.get("image_sizes") == expected.get("image_sizes")
        assert enc.get("hd_num") == expected.get("hd_num")


def test_every_template_has_every_scenario() -> None:
    """A template without its full scenario set fails here (ms-swift#9276: drift in an unpinned template)."""
    missing = [
        f"{t}/{s}" for t in TEMPLATES.names() for s in SCENARIO_NAMES if not (GOLDEN / "templates" / t / f"{s}.json").is_file()
    ]
    assert not missing, f"golden cases missing (run python scripts/make_golden.py): {missing}"
    for path in CASES:
        case = json.loads(path.read_text())
        assert ("expected" in case) != ("not_applicable" in case), path
        assert case["meta"]["template_type"] == path.parent.name and case["meta"]["scenario"] == path.stem


def test_image_scenarios_pin_images() -> None:
    """Each image-capable template pins at least one encoded image, and truncation_left shows a dropped image."""
    for t in TEMPLATES.names():
        if TEMPLATES.get(t).media == "text":
            continue
        one = json.loads((GOLDEN / "templates" / t / "one_image.json").read_text())["expected"]
        assert len(one["image_spans"]) == 1, t
        left = json.loads((GOLDEN / "templates" / t / "truncation_left.json").read_text())
        assert left["expected"]["image_spans"] == [] and len(left["expected"]["input_ids"]) < left["input"]["max_length"]


def test_manifest_matches_files() -> None:
    """golden/ (but arch/ and oracle/, which have their own generators) changes only through scripts/make_golden.py."""
    manifest = json.loads((GOLDEN / "MANIFEST.json").read_text())
    assert manifest["versions"]["transformers"] and manifest["versions"]["tokenizers"]  # what made the files
    files = {
        str(p.relative_to(GOLDEN)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in GOLDEN.rglob("*")
        if p.is_file() and p.name not in ("MANIFEST.json", "README.md") and p.relative_to(GOLDEN).parts[0] not in ("arch", "oracle")
    }
    assert files == manifest["files"]
