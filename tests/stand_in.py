"""Special-token ids per template, read from the golden cases (``meta.special_tokens``): one source for tests."""

from __future__ import annotations

import functools
import json
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@functools.cache
def golden_specials(template_type: str) -> tuple[dict[str, int], str | None, str | None, str | None]:
    """(ids, bos, eos, pad) as the real tokenizer gives them for ``template_type``."""
    meta = json.loads((GOLDEN / "templates" / template_type / "single_turn.json").read_text())["meta"]
    sp = meta["special_tokens"]
    return dict(sp["ids"]), sp["bos"], sp["eos"], sp["pad"]


def all_template_specials() -> dict[str, tuple[dict[str, int], str | None, str | None, str | None]]:
    return {p.name: golden_specials(p.name) for p in sorted((GOLDEN / "templates").iterdir()) if p.is_dir()}
