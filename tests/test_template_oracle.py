"""vlmref's template profiles against ids that the real ms-swift 2.2.0 produced.

The fixtures (``golden/oracle/templates/<template>.json``) are written by ``nox -s oracle`` in a venv with
ms-swift 2.2.0 and the packages of its era; here they are only read, with no swift install and no network.

* ``swift-2.2.0``: every case agrees (``input_ids``, ``labels``, XComposer2's ``im_mask``, CogVLM's
  ``token_type_ids``), and vlmref raises a named error wherever swift returned ``{}`` or raised.
* ``official``: every case that differs is explained by recorded deviations (``vlmref.testing.oracle.explain``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pytest

from vlmref.templates.meta import OFFICIAL, SWIFT_2_2_0, get_template_meta
from vlmref.testing.golden import SCENARIO_NAMES, scenario_example
from vlmref.testing.oracle import (
    ORACLE_TEMPLATES,
    difference,
    encode_case,
    explain,
    fixture_paths,
    load_fixture,
    tokenizer_factory,
)

FIXTURES = fixture_paths()
MIN_SAMPLES = 200


@functools.cache
def _tokenizer_for(template_type: str, root: Path):
    return tokenizer_factory(template_type, root)


@pytest.mark.golden
@pytest.mark.real_tokenizer
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_swift_profile_equals_ms_swift(path: Path, tokenizers_root: Path) -> None:
    data = load_fixture(path)
    template_type = data["meta"]["template_type"]
    meta = get_template_meta(template_type, SWIFT_2_2_0)
    tokenizer = _tokenizer_for(template_type, tokenizers_root)(meta)
    failures = []
    for case in data["cases"]:
        problem = difference(case["swift"], encode_case(meta, tokenizer, case))
        if problem:
            failures.append(f"{case['name']}: {problem}")
    assert not failures, f"{len(failures)} of {len(data['cases'])} cases differ from ms-swift 2.2.0:\n" + "\n".join(
        failures[:5])


@pytest.mark.golden
@pytest.mark.real_tokenizer
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_official_differences_are_recorded_deviations(path: Path, tokenizers_root: Path) -> None:
    """Each case where ``official`` differs from swift maps to deviation ids; the ids it maps to are recorded on the
    template, and at least one case differs (the fixtures exercise the deviations)."""
    data = load_fixture(path)
    template_type = data["meta"]["template_type"]
    tokenizer_for = _tokenizer_for(template_type, tokenizers_root)
    explained = {case["name"]: explain(case, template_type, tokenizer_for) for case in data["cases"]}
    unmapped = [name for name, ids in explained.items() if ids is None]
    assert not unmapped, f"{len(unmapped)} cases differ from ms-swift 2.2.0 by no recorded deviation: {unmapped[:8]}"
    recorded = {d.id for d in get_template_meta(template_type, OFFICIAL).deviations}
    used = {i for ids in explained.values() for i in ids}
    assert used and used <= recorded


@pytest.mark.golden
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_oracle_fixture_covers_scenarios_and_samples(path: Path) -> None:
    """Each fixture holds every applicable golden scenario and >= 200 seeded samples, made by ms-swift 2.2.0."""
    data = load_fixture(path)
    meta = data["meta"]
    assert meta["versions"]["ms-swift"] == "2.2.0"
    assert meta["versions"]["transformers"] == "4.41.2"
    names = [c["name"] for c in data["cases"]]
    expected = [s for s in SCENARIO_NAMES if scenario_example(meta["template_type"], s)[0] is not None]
    assert [n for n in names if not n.startswith("sample_")] == expected
    samples = [c for c in data["cases"] if c["name"].startswith("sample_")]
    assert len(samples) >= MIN_SAMPLES
    assert sum("input_ids" in c["swift"] for c in samples) >= MIN_SAMPLES // 2  # mostly encodable samples


def test_oracle_manifest_matches_files() -> None:
    """golden/oracle/templates changes only through scripts/oracle/make_template_oracle.py (nox -s oracle)."""
    manifest = json.loads((ORACLE_TEMPLATES / "MANIFEST.json").read_text(encoding="utf-8"))
    assert FIXTURES, "no template oracle fixtures"
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in FIXTURES} == manifest["files"]
