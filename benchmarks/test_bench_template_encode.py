"""Template encode throughput per template type (pytest-benchmark): `nox -s bench` or
`pytest benchmarks --benchmark-only`. Uses the real tokenizers when present, else the byte-level stand-in
(the JSON's `extra_info.tokenizer` says which). samples/s = 1 / mean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlmref.templates import TEMPLATES, get_template
from vlmref.testing.golden import load_golden_tokenizer, tiny_tokenizer_for
from vlmref.tokenizers import shared_tokenizers_dir

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@pytest.mark.parametrize("template_type", TEMPLATES.names())
@pytest.mark.parametrize("scenario", ["one_image", "multi_turn"])
def test_encode(benchmark, template_type: str, scenario: str) -> None:
    case = json.loads((GOLDEN / "templates" / template_type / f"{scenario}.json").read_text())
    root = shared_tokenizers_dir()
    if root is not None and root.is_dir():
        tokenizer, kind = load_golden_tokenizer(template_type, root), "real"
    else:
        tokenizer, kind = tiny_tokenizer_for(case), "stand-in"
    template = get_template(template_type, tokenizer, media_root=str(GOLDEN))
    example = case["input"]["example"]
    benchmark.extra_info.update(tokenizer=kind, template_type=template_type, scenario=scenario)
    out = benchmark(template.encode, example)
    assert out["input_ids"] == case["expected"]["input_ids"] or kind == "stand-in"
