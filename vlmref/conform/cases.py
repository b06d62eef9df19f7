"""The cases a conformance run encodes: for each model type, the golden scenarios of its template
(``golden/templates/<template>/*.json``) and the seeded ms-swift 2.2.0 oracle samples
(``golden/oracle/templates/<template>.json``; CJK, emoji, whitespace at segment edges, typed special tokens,
multi-turn, images per the model's rules, ``max_length`` cases).

>>> cases = cases_for("qwen-vl-chat")
>>> cases[0].source, cases[0].name, cases[0].template_type
('golden', 'cjk_emoji_whitespace', 'qwen-vl')
>>> sorted({c.source for c in cases})
['golden', 'oracle']
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.model_types import MODELS

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
INLINE_IMAGE = re.compile(r"<img>(.*?)</img>", re.DOTALL)


@dataclass(frozen=True)
class ConformCase:
    model_type: str
    template_type: str
    source: str  # "golden" | "oracle"
    name: str
    example: dict[str, Any]  # images relative to golden/
    options: dict[str, Any] = field(default_factory=dict)  # max_length, truncation_strategy

    @property
    def case_id(self) -> str:
        return f"{self.model_type}/{self.source}/{self.name}"

    def adapter_example(self, golden: Path = GOLDEN) -> dict[str, Any]:
        """The example as an adapter gets it: images as absolute file paths, in ``images`` and in inline
        ``<img>path</img>`` markup of the text (Qwen-VL, InternLM-XComposer2) alike."""
        example = copy.deepcopy(self.example)

        def absolute(path: Any) -> Any:
            if isinstance(path, str) and path and not Path(path).is_absolute() and (golden / path).exists():
                return str((golden / path).resolve())
            return path

        def inline(text: Any) -> Any:
            if not isinstance(text, str):
                return text
            return INLINE_IMAGE.sub(lambda m: f"<img>{absolute(m.group(1))}</img>", text)

        if example.get("images"):
            example["images"] = [absolute(m) for m in example["images"]]
        for key in ("query", "response", "system"):
            if key in example:
                example[key] = inline(example[key])
        if example.get("history"):
            example["history"] = [[inline(q), inline(r)] for q, r in example["history"]]
        return example


def _options(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in ("max_length", "truncation_strategy") if data.get(k) is not None}


def golden_cases(model_type: str, golden: Path = GOLDEN) -> list[ConformCase]:
    template_type = MODELS.get(model_type).template
    out = []
    for path in sorted((golden / "templates" / template_type).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "input" not in data:  # not applicable to the model's rules
            continue
        inp = data["input"]
        out.append(ConformCase(MODELS.canonical(model_type), template_type, "golden", path.stem, inp["example"],
                               _options(inp)))
    return out


def oracle_cases(model_type: str, golden: Path = GOLDEN, skip: set[str] | frozenset[str] = frozenset()
                 ) -> list[ConformCase]:
    """The oracle fixture's cases whose names are not in ``skip`` (the golden scenarios it repeats)."""
    template_type = MODELS.get(model_type).template
    path = golden / "oracle" / "templates" / f"{template_type}.json"
    if not path.exists():  # a template ms-swift 2.2.0 does not have (InternLM-XComposer2.5)
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [ConformCase(MODELS.canonical(model_type), template_type, "oracle", case["name"], case["example"],
                        _options(case))
            for case in data["cases"] if case["name"] not in skip]


def cases_for(model_type: str, golden: Path = GOLDEN) -> list[ConformCase]:
    """The golden scenarios, then the oracle samples (the oracle's copies of the golden scenarios left out)."""
    first = golden_cases(model_type, golden)
    return first + oracle_cases(model_type, golden, skip={c.name for c in first})
