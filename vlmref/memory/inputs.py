"""The batch a memory scenario runs: one real sample per row, built by the model's template and collator.

Token ids come from the model's real tokenizer when the machine has its files, else from the byte-level stand-in
(``models/fallback_tokenizer.py``: real special ids and vocabulary size, but the template's markup takes more
positions). The text filler is sized so the sample has exactly the scenario's length either way; memory does not
depend on which ids the text has.

>>> from vlmref.memory.scenario import MemoryScenario
>>> s = MemoryScenario("qwen-vl-chat", "sft", text_tokens=64)
>>> shape = sample_shape(s); shape["image_positions"]
258
>>> sample_shape(s.with_(text_tokens=74))["positions"] - shape["positions"]
10
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

from ..models.model_types import MODELS
from .scenario import MemoryScenario, ScenarioError

QUERY = "please describe the image."


@functools.cache
def scenario_tokenizer(model_type: str) -> tuple[Any, str]:
    """``(tokenizer, 'real' | 'stand-in')``: the real tokenizer files when the machine has them (``../shared/tokenizers``
    or ``$VLMREF_TOKENIZERS_DIR``), else the byte-level stand-in (real special ids and vocabulary size; text is one
    position per byte, so the template's markup takes more positions than with the real tokenizer)."""
    from ..models.fallback_tokenizer import write_fallback_tokenizer
    from ..models.loader import get_model_tokenizer, shared_tokenizer_folder

    folder = shared_tokenizer_folder(model_type)
    if folder is not None:
        return get_model_tokenizer(model_type, load_model=False, model_id_or_path=folder)[1], "real"
    tmp = tempfile.mkdtemp(prefix=f"vlmref-memory-{model_type}-")
    write_fallback_tokenizer(model_type, tmp)
    return get_model_tokenizer(model_type, load_model=False, model_id_or_path=tmp)[1], "stand-in"


@functools.cache
def _image_file(height: int, width: int) -> str:
    from PIL import Image

    path = Path(tempfile.mkdtemp(prefix="vlmref-memory-img-")) / f"image_{height}x{width}.png"
    Image.new("RGB", (width, height), (118, 92, 61)).save(path)
    return str(path)


def _encode(template: Any, scenario: MemoryScenario, n_filler: int) -> dict[str, Any]:
    image = _image_file(*scenario.image_size)
    example = {"query": QUERY, "images": [image] * scenario.images}
    filler = " x" * max(n_filler, 1)  # one position per " x" with every tokenizer here (and per byte pair, stand-in)
    if scenario.mode == "sft":
        example["response"] = filler
    else:
        example["query"] = QUERY + " " + filler
    return template.encode(example)


def encode_sample(scenario: MemoryScenario) -> dict[str, Any]:
    """One encoded sample: the template's markup, the query, the image(s) and ``text_tokens`` text positions (the
    response for sft, appended to the query for infer), or as many as make it exactly ``max_length`` long."""
    from ..templates import get_template

    meta = MODELS.get(scenario.model_type)
    tokenizer = scenario_tokenizer(meta.model_type)[0]
    template = get_template(meta.template, tokenizer, max_length=None, **meta.media_options)
    probe = _encode(template, scenario, 1)
    n_image = sum(length for _, length in probe["image_spans"])
    per_filler = 2 if scenario_tokenizer(meta.model_type)[1] == "stand-in" else 1
    fixed = len(probe["input_ids"]) - per_filler  # everything but the filler
    budget = scenario.max_length  # ms-swift 2.2.0: max_length counts text positions (image features are extra)
    text_target = budget if scenario.text_tokens is None else fixed - n_image + scenario.text_tokens
    if text_target > budget or text_target <= fixed - n_image:
        raise ScenarioError(f"{scenario.model_type}: the prompt and {scenario.text_tokens} text position(s) take "
                            f"{text_target} text positions (+{n_image} image positions); max_length is {budget}")
    target = n_image + text_target
    n, encoded = 1, probe
    for _ in range(8):  # real tokenizers may merge at the edges: converge on the exact length
        n = max(1, n + (target - len(encoded["input_ids"])) // per_filler)
        encoded = _encode(template, scenario, n)
        if len(encoded["input_ids"]) == target:
            return encoded
    raise ScenarioError(f"{scenario.model_type}: could not build a sample of exactly {target} positions "
                        f"(got {len(encoded['input_ids'])})")


def build_batch(scenario: MemoryScenario, encoded: dict[str, Any] | None = None) -> dict[str, Any]:
    """The collated batch (CPU tensors) of ``batch_size`` copies of ``encoded`` (default :func:`encode_sample`)."""
    from ..datasets.collate import DataCollator

    meta = MODELS.get(scenario.model_type)
    encoded = encode_sample(scenario) if encoded is None else encoded
    side = "right" if scenario.mode == "sft" else "left"
    collator = DataCollator(meta.model_type, scenario_tokenizer(meta.model_type)[0], padding_side=side)
    return collator([encoded] * scenario.batch_size)


def batch_positions(batch: dict[str, Any]) -> int:
    """Sequence positions per row (image positions included)."""
    return int(batch["input_ids"].shape[1])


def sample_shape(scenario: MemoryScenario, encoded: dict[str, Any] | None = None) -> dict[str, int]:
    """``{'positions', 'image_positions', 'text_positions'}`` of one sample of the scenario (of ``encoded`` if given)."""
    encoded = encode_sample(scenario) if encoded is None else encoded
    n_image = sum(length for _, length in encoded["image_spans"])
    return {"positions": len(encoded["input_ids"]), "image_positions": n_image,
            "text_positions": len(encoded["input_ids"]) - n_image}
