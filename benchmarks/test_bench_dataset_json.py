"""``.json`` vs ``.jsonl`` load time on the same 100k rows (pytest-benchmark): `nox -s bench -- -k json`.

Both files hold the same rows (the three row formats, 1-3 turns, an image path each); the ``.json`` one is pretty-printed
(``indent=2``, ~20 lines per row), as hand-made JSON datasets usually are. Measured: ``load_dataset`` with
``check_dataset_strategy='none'`` (read + normalise). The ``json`` case records ``json_over_jsonl``, its mean over the
``jsonl`` mean (it ran first); reading a .json once cost O(rows x file size) when every row's line was counted from
the start of the file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from vlmref.datasets.loader import load_dataset

ROWS = 100_000
MODEL_TYPE = "qwen-vl-chat"  # multi-turn, any images: every row shape is valid for it
_MEANS: dict[str, float] = {}


def _rows() -> list[dict]:
    rng = random.Random(0)
    rows = []
    for i in range(ROWS):
        turns = [(f"question {i}.{t} about the picture?", f"answer {i}.{t}: it shows shapes.")
                 for t in range(rng.randint(1, 3))]
        image = f"img{rng.randrange(4)}.png"
        if i % 3 == 0:
            *history, (q, r) = turns
            rows.append({"query": q, "response": r, "history": [list(h) for h in history], "images": [image]})
        elif i % 3 == 1:
            conv = [m for q, r in turns for m in ({"from": "user", "value": q}, {"from": "assistant", "value": r})]
            rows.append({"conversations": conv, "images": [image]})
        else:
            msgs = [m for q, r in turns for m in ({"role": "user", "content": q}, {"role": "assistant", "content": r})]
            rows.append({"messages": msgs, "images": [image]})
    return rows


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bench_json")
    rows = _rows()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "train.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return {"jsonl": folder / "train.jsonl", "json": folder / "train.json"}


@pytest.mark.parametrize("suffix", ["jsonl", "json"])
def test_load_100k_json_vs_jsonl(benchmark, files: dict[str, Path], suffix: str) -> None:
    path = str(files[suffix])
    loaded = benchmark.pedantic(load_dataset, args=(path, MODEL_TYPE), kwargs={"check_dataset_strategy": "none"},
                                rounds=3, iterations=1)
    assert len(loaded.train) == ROWS
    mean = benchmark.stats.stats.mean
    _MEANS[suffix] = mean
    benchmark.extra_info.update(rows=ROWS, suffix=suffix, rows_per_s=round(ROWS / mean))
    if suffix == "json" and "jsonl" in _MEANS:
        benchmark.extra_info["json_over_jsonl"] = round(mean / _MEANS["jsonl"], 3)
