"""vlmref's models against the UPSTREAM modeling code: tiny checkpoints written by upstream ``save_pretrained``.

``golden/oracle/models/<layout>/`` (written by ``scripts/oracle/make_model_oracle.py`` in the oracle venv with the
pinned upstream code; see golden/oracle/README.md "Model oracles") holds the upstream checkpoint, the upstream fp32
logits for a fixed image + ids input, the 8-token greedy continuation from upstream ``generate()`` and the upstream
image processor's tensors for the golden images. Here vlmref loads each checkpoint through its public loader and
must give the same logits (max-abs difference <= 1e-4), the same greedy tokens, and the same pixel tensors except
where a recorded upstream bug (a named deviation) says vlmref differs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vlmref.datasets.processors import get_image_processor
from vlmref.models.loader import get_model_tokenizer, load_pretrained_model

ROOT = Path(__file__).resolve().parent.parent / "golden" / "oracle" / "models"
GOLDEN_IMAGES = Path(__file__).resolve().parent.parent / "golden" / "images"
LAYOUTS = sorted(p.name for p in ROOT.iterdir() if (p / "oracle.json").is_file()) if ROOT.is_dir() else []
# layouts with an upstream checkpoint (xcomposer2d5 has preprocessing only: its upstream code hard-codes 4096 widths)
MODEL_LAYOUTS = [name for name in LAYOUTS
                 if json.loads((ROOT / name / "oracle.json").read_text(encoding="utf-8")).get("checkpoint",
                                                                                         "checkpoint")]
LOGITS_ATOL = 1e-4
PIXEL_ATOL = 1e-5

pytestmark = pytest.mark.skipif(not LAYOUTS, reason="no model oracle fixtures under golden/oracle/models")


def _meta(layout: str) -> dict:
    return json.loads((ROOT / layout / "oracle.json").read_text(encoding="utf-8"))


def _oracle(layout: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(ROOT / layout / "oracle.safetensors"))


def _pixels(layout: str) -> dict[str, np.ndarray]:
    with np.load(ROOT / layout / "pixels.npz") as data:
        return {k: data[k] for k in data.files}


def _inputs(layout: str, meta: dict, model=None) -> dict[str, torch.Tensor]:
    oracle, pixels = _oracle(layout), _pixels(layout)
    out = {}
    for name, ref in meta["vlmref_inputs"].items():
        source, key = ref.split(":", 1)
        out[name] = oracle[key] if source == "oracle" else torch.from_numpy(pixels[key])
    if meta.get("replace_placeholder_with_config_image_token_id"):
        # upstream's ids carry its placeholder (-200) at the image positions; vlmref's config names its image id
        ids = out["input_ids"]
        out["input_ids"] = ids.masked_fill(ids == meta["image_placeholder"], int(model.config.image_token_id))
    return out


def _image(name: str, meta: dict):
    from PIL import Image

    extra = meta["preprocessing"].get("extra_images", {})
    if name in extra:  # solid colour drawn in memory, as the generator did
        size, colour = extra[name]
        return Image.new("RGB", tuple(size), tuple(colour))
    return Image.open(GOLDEN_IMAGES / f"{name}.png").convert("RGB")


_MODELS: dict[str, torch.nn.Module] = {}


def _model(layout: str, meta: dict):
    if layout not in _MODELS:
        folder = ROOT / layout / meta.get("checkpoint", "checkpoint")
        if meta["loader"] == "get_model_tokenizer":
            model, _ = get_model_tokenizer(meta["model_type"], torch.float32, model_id_or_path=str(folder))
        else:  # tiny upstream checkpoints carry no tokenizer: ids are fed directly
            model = load_pretrained_model(meta["model_type"], folder, torch_dtype=torch.float32)
        _MODELS[layout] = model.eval()
    return _MODELS[layout]


def test_manifest_matches_files() -> None:
    manifest = json.loads((ROOT / "MANIFEST.json").read_text(encoding="utf-8"))
    on_disk = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and p.name != "MANIFEST.json"}
    assert on_disk == set(manifest["files"]), "files under golden/oracle/models differ from MANIFEST.json"
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((ROOT / rel).read_bytes()).hexdigest() == digest, f"{rel} changed since generation"
    assert set(LAYOUTS) == set(manifest["layouts"])


@pytest.mark.parametrize("layout", MODEL_LAYOUTS)
def test_logits_match_upstream(layout: str) -> None:
    meta = _meta(layout)
    oracle = _oracle(layout)
    model = _model(layout, meta)
    with torch.no_grad():
        logits = model(**_inputs(layout, meta, model)).logits[0].to(torch.float32)
    rows = oracle["logits_positions"]
    assert logits.shape[0] == oracle["logits_sum"].shape[0], "sequence length differs from upstream"
    assert logits.shape[-1] == oracle["logits_rows"].shape[-1], "vocabulary size differs from upstream"
    diff = (logits[rows] - oracle["logits_rows"]).abs().max().item()
    assert diff <= LOGITS_ATOL, f"{layout}: text-position logits max-abs difference {diff:.3e} > {LOGITS_ATOL}"
    # every position (image positions included), through per-row summaries
    n = logits.shape[-1]
    assert (logits.max(-1).values - oracle["logits_max"]).abs().max().item() <= LOGITS_ATOL
    assert ((logits.sum(-1) - oracle["logits_sum"]) / n).abs().max().item() <= LOGITS_ATOL
    rms, rms_up = logits.pow(2).mean(-1).sqrt(), (oracle["logits_sumsq"] / n).sqrt()
    assert (rms - rms_up).abs().max().item() <= LOGITS_ATOL
    assert torch.equal(logits.argmax(-1), oracle["logits_argmax"])


@pytest.mark.parametrize("layout", MODEL_LAYOUTS)
def test_greedy_tokens_match_upstream(layout: str) -> None:
    meta = _meta(layout)
    expected = _oracle(layout)["generated"].tolist()
    model = _model(layout, meta)
    inputs = _inputs(layout, meta, model)
    gen = meta["generation"]
    # upstream ran with eos_token_id=None (never stops, no eos suppression): the same here
    config = copy.deepcopy(model.generation_config)
    config.update(do_sample=False, max_new_tokens=gen["new_tokens"], min_new_tokens=None, eos_token_id=None,
                  pad_token_id=0)
    with torch.no_grad():
        out = model.generate(**inputs, generation_config=config)
    got = out[0, inputs["input_ids"].shape[1]:].tolist()
    assert got == expected, f"{layout}: greedy tokens {got} != upstream {expected}"


def _preprocessing_cases() -> list[tuple[str, str]]:
    return [(layout, image) for layout in LAYOUTS for image in _meta(layout)["preprocessing"]["images"]]


@pytest.mark.parametrize(("layout", "image_name"), _preprocessing_cases())
def test_image_preprocessing_matches_upstream(layout: str, image_name: str) -> None:
    meta = _meta(layout)
    pixels = _pixels(layout)
    prep = meta["preprocessing"]
    processor = get_image_processor(meta["model_type"], **prep.get("vlmref_processor_options", {}))
    out = processor([_image(image_name, meta)])
    upstream = pixels[f"{image_name}.pixel_values"]
    ours = out["pixel_values"]
    ours = (ours[0][None] if isinstance(ours, list) else ours).numpy()  # XComposer2.5: a list of (3, H, W)
    if f"{image_name}.image_sizes" in pixels:
        assert out["image_sizes"].tolist() == pixels[f"{image_name}.image_sizes"].tolist()
    assert ours.shape == upstream.shape, f"pixel tensor shape {ours.shape} != upstream {upstream.shape}"
    deviation = prep.get("deviations", {}).get(image_name)
    if deviation is None:
        diff = float(np.abs(ours - upstream).max())
        assert diff <= PIXEL_ATOL, f"{layout}/{image_name}: pixels differ from upstream by {diff:.3e}"
        return
    # a recorded upstream bug: vlmref differs exactly in the patches the deviation names, nowhere else
    affected = set(deviation["affected_patches"])
    for patch in range(upstream.shape[1]):
        diff = float(np.abs(ours[0, patch] - upstream[0, patch]).max())
        if patch in affected:
            assert diff > 1e-3, f"{deviation['name']}: patch {patch} should differ from upstream (it does not)"
        else:
            assert diff <= PIXEL_ATOL, f"{deviation['name']}: patch {patch} differs from upstream by {diff:.3e}"


def test_no_upstream_code_in_the_fixtures() -> None:
    """The fixtures hold data only: save_pretrained of a remote-code model copies its modeling files, which the
    generator deletes (upstream code is never committed)."""
    code = [str(p.relative_to(ROOT.parent)) for p in ROOT.parent.rglob("*") if p.suffix in (".py", ".pyc")]
    assert not code, code
