"""Compare vlmref's template profiles with the ms-swift 2.2.0 oracle fixtures (``golden/oracle/templates``).

``swift-2.2.0`` must equal every fixture case. Under ``official`` each case that differs is explained by the smallest
set of recorded deviations whose ``swift`` fields, applied to the official meta, give swift's result::

    >>> explain(case, 'llava-qwen-instruct', tokenizers)  # doctest: +SKIP
    ('llava-qwen-system-period',)

``python scripts/oracle/report.py`` prints the per-template table (equal cases, differences by deviation, speed).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

from ..errors import VlmrefError
from ..templates.base import Template
from ..templates.meta import OFFICIAL, SWIFT_2_2_0, TemplateMeta, apply_deviations, get_template_meta

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
ORACLE_TEMPLATES = GOLDEN / "oracle" / "templates"
COMPARED = ("input_ids", "labels", "im_mask", "token_type_ids")


def fixture_paths(folder: Path = ORACLE_TEMPLATES) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.name != "MANIFEST.json")


def load_fixture(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def encode_case(meta: TemplateMeta, tokenizer: Any, case: dict[str, Any], media_root: Path = GOLDEN) -> dict[str, Any]:
    """vlmref's result for one fixture case under ``meta``: ids, labels and masks, or the named error it raised."""
    template = Template(meta, tokenizer, max_length=case.get("max_length"),
                        truncation_strategy=case.get("truncation_strategy", "delete"), media_root=str(media_root))
    try:
        enc = template.encode(case["example"])
    except VlmrefError as err:
        return {"error": f"{type(err).__name__}: {err}"}
    return {key: enc[key] for key in COMPARED if key in enc}


def difference(swift: dict[str, Any], got: dict[str, Any]) -> str | None:
    """``None`` when vlmref agrees with swift (same ids/labels/masks, or a named error where swift gave none)."""
    if "input_ids" not in swift:
        return None if "error" in got else f"ms-swift gave {swift}, vlmref encoded it"
    if "error" in got:
        return f"vlmref raised {got['error']}"
    for key in COMPARED:
        if key in swift and swift[key] != got.get(key):
            a, b = swift[key] or [], got.get(key) or []
            i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            return f"{key} differ at {i} (len {len(a)} vs {len(b)}): swift {a[i:i + 6]} vlmref {b[i:i + 6]}"
    return None


TokenizerFor = Callable[[TemplateMeta], Any]


def tokenizer_factory(template_type: str, root: Path) -> TokenizerFor:
    """``meta -> tokenizer``: the real tokenizer a (possibly partly swift) meta asks for, from ``root`` (a
    ../shared/tokenizers-like folder), loaded once per tokenizer-relevant field values."""
    from .golden import load_golden_tokenizer

    cache: dict[tuple, Any] = {}

    def tokenizer_for(meta: TemplateMeta) -> Any:
        key = (meta.tokenizer_added_tokens, meta.tokenizer_prefix_policy)
        if key not in cache:
            cache[key] = load_golden_tokenizer(template_type, root, meta=meta)
        return cache[key]

    return tokenizer_for


def explain(case: dict[str, Any], template_type: str, tokenizer_for: TokenizerFor) -> tuple[str, ...] | None:
    """Deviation ids that explain how ``official`` differs from swift on ``case``: ``()`` if it does not differ,
    ``None`` if no set of recorded deviations does (an unrecorded difference)."""
    official = get_template_meta(template_type, OFFICIAL)
    if difference(case["swift"], encode_case(official, tokenizer_for(official), case)) is None:
        return ()
    candidates = [d for d in official.deviations if d.swift]
    for size in range(1, len(candidates) + 1):
        for subset in combinations(candidates, size):
            meta = apply_deviations(official, subset)
            if difference(case["swift"], encode_case(meta, tokenizer_for(meta), case)) is None:
                return tuple(d.id for d in subset)
    return None


def template_report(data: dict[str, Any], tokenizer_for: TokenizerFor) -> dict[str, Any]:
    """Per template: cases equal under swift-2.2.0, official differences by deviation set, unexplained cases."""
    template_type = data["meta"]["template_type"]
    swift_meta = get_template_meta(template_type, SWIFT_2_2_0)
    swift_failures, unexplained = [], []
    by_deviation: Counter[str] = Counter()  # smallest explaining set -> cases
    by_id: Counter[str] = Counter()  # deviation id -> cases it takes part in
    for case in data["cases"]:
        problem = difference(case["swift"], encode_case(swift_meta, tokenizer_for(swift_meta), case))
        if problem:
            swift_failures.append(f"{case['name']}: {problem}")
        ids = explain(case, template_type, tokenizer_for)
        if ids is None:
            unexplained.append(case["name"])
        elif ids:
            by_deviation[" + ".join(ids)] += 1
            by_id.update(ids)
    return {
        "template_type": template_type,
        "cases": len(data["cases"]),
        "swift_equal": len(data["cases"]) - len(swift_failures),
        "swift_failures": swift_failures,
        "official_differences": dict(sorted(by_deviation.items())),
        "official_differences_by_id": dict(by_id.most_common()),
        "official_equal": len(data["cases"]) - sum(by_deviation.values()) - len(unexplained),
        "unexplained": unexplained,
    }


def time_encode(data: dict[str, Any], tokenizer: Any, rounds: int = 5) -> float:
    """Best-of-``rounds`` seconds for vlmref's ``swift-2.2.0`` encode of every case of a fixture, one template per
    (max_length, truncation_strategy) as ms-swift keeps one template and changes its max_length."""
    import time

    template_type = data["meta"]["template_type"]
    meta = get_template_meta(template_type, SWIFT_2_2_0)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        templates: dict[tuple, Template] = {}
        for case in data["cases"]:
            key = (case.get("max_length"), case.get("truncation_strategy", "delete"))
            if key not in templates:
                templates[key] = Template(meta, tokenizer, max_length=key[0], truncation_strategy=key[1],
                                          media_root=str(GOLDEN))
            try:
                templates[key].encode(case["example"])
            except VlmrefError:
                pass
        best = min(best, time.perf_counter() - start)
    return best
