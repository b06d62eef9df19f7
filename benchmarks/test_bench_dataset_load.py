"""Dataset load + validation throughput on a 10k-row jsonl (pytest-benchmark): `nox -s bench`.

rows/s = 10_000 / mean. Stages measured side by side in one run:

* ``parse``: read + normalise (json decode, format detection, image path resolution);
* ``rules``: parse + the model's row rules and the template's input checks (``check_dataset_strategy=error``);
* ``images``: the same + every image header opened (``check_images=True``);
* ``length``: the same + every row encoded with the real tokenizer under ``max_length`` (when ../shared has it).

The file mixes the three row formats, 1-3 turns, and rows with one image (4 distinct PNGs).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image

from vlmref.datasets.loader import load_dataset
from vlmref.models.loader import shared_tokenizer_folder
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template

ROWS = 10_000
MODEL_TYPE = "qwen-vl-chat"  # multi-turn, any images: every row shape is valid for it


@pytest.fixture(scope="module")
def big_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bench_data")
    for i, size in enumerate([(640, 480), (336, 336), (300, 900), (1024, 768)]):
        Image.new("RGB", size, (40 * i, 100, 200)).save(folder / f"img{i}.png")
    rng = random.Random(0)
    lines = []
    for i in range(ROWS):
        turns = [(f"question {i}.{t} about the picture?", f"answer {i}.{t}: it shows shapes.") for t in range(rng.randint(1, 3))]
        image = f"img{rng.randrange(4)}.png"
        kind = i % 3
        if kind == 0:
            *history, (q, r) = turns
            row = {"query": q, "response": r, "history": [list(h) for h in history], "images": [image]}
        elif kind == 1:
            conv = [m for q, r in turns for m in ({"from": "user", "value": q}, {"from": "assistant", "value": r})]
            conv[0]["value"] = f"Picture 1:<img>{image}</img>\n" + conv[0]["value"]
            row = {"conversations": conv}
        else:
            msgs = [m for q, r in turns for m in ({"role": "user", "content": q}, {"role": "assistant", "content": r})]
            row = {"messages": msgs, "images": [image]}
        lines.append(json.dumps(row))
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _length_template():
    folder = shared_tokenizer_folder(MODEL_TYPE)
    if folder is None:
        pytest.skip("real tokenizer files not found (../shared/tokenizers or VLMREF_TOKENIZERS_DIR)")
    from vlmref.models.loader import get_model_tokenizer

    _, tokenizer = get_model_tokenizer(MODEL_TYPE, load_model=False, model_id_or_path=str(folder))
    return get_template(MODELS.get(MODEL_TYPE).template, tokenizer, max_length=2048)


@pytest.mark.parametrize("stage", ["parse", "rules", "images", "length"])
def test_load_and_validate_10k(benchmark, big_jsonl: Path, stage: str) -> None:
    kwargs: dict = {"check_dataset_strategy": "none" if stage == "parse" else "error"}
    if stage in ("images", "length"):
        kwargs["check_images"] = True
    if stage == "length":
        kwargs["template"] = _length_template()
    loaded = benchmark.pedantic(load_dataset, args=(str(big_jsonl), MODEL_TYPE), kwargs=kwargs, rounds=3, iterations=1)
    assert len(loaded.train) == ROWS
    benchmark.extra_info.update(rows=ROWS, stage=stage, model_type=MODEL_TYPE,
                                rows_per_s=round(ROWS / benchmark.stats.stats.mean))
