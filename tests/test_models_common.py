"""Checks every architecture passes: full-size accounting on meta, create-tiny -> get_model_tokenizer -> forward,
model-info, LoRA target resolution. Family-specific behaviour is in tests/test_arch_<family>.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from stand_in import golden_specials

from vlmref.cli.main import main
from vlmref.datasets.collate import DataCollator
from vlmref.models.arch import get_arch
from vlmref.models.info import (
    build_on_meta,
    lora_summary,
    matched_linears,
    model_info,
    parameter_counts,
    resolve_lora_targets,
)
from vlmref.models.loader import get_model_tokenizer
from vlmref.models.model_types import MODELS
from vlmref.templates import get_template

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "arch"
MODEL_TYPES = MODELS.names()


def golden_arch(model_type: str) -> dict:
    return json.loads((GOLDEN / f"{get_arch(model_type).upstream_keys}.json").read_text())


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_full_size_counts_match_golden_and_published(model_type: str) -> None:
    spec = get_arch(model_type)
    counts = parameter_counts(build_on_meta(model_type), spec)
    golden = golden_arch(model_type)
    assert counts == golden["param_counts"]
    published = golden["published_total"]["value"]
    assert abs(counts["total"] - published) / published < 0.01, (counts["total"], published)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_components_cover_every_parameter_once(model_type: str) -> None:
    spec = get_arch(model_type)
    model = build_on_meta(model_type, tiny=True)
    counts = parameter_counts(model, spec)  # raises if a parameter belongs to no component
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["language_model"] > 0 and counts["vision_tower"] > 0


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_lora_default_targets_exist_and_all_excludes_the_head(model_type: str) -> None:
    model = build_on_meta(model_type, tiny=True)
    default = matched_linears(model, resolve_lora_targets(model, model_type, "DEFAULT"))
    assert default, "DEFAULT matches no Linear"
    every = matched_linears(model, resolve_lora_targets(model, model_type, "ALL"))
    names = {n for n, _, _ in every}
    assert not any(n.rsplit(".", 1)[-1] in ("lm_head", "output") for n in names)
    assert {n for n, _, _ in default} <= names
    summary = lora_summary(model, model_type, "DEFAULT", rank=8)
    assert summary["trainable"] == sum(8 * (i + o) for _, i, o in default)


def test_model_info_cli(capsys: pytest.CaptureFixture) -> None:
    assert main(["model-info", "--model_type", "qwen-vl-chat", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == golden_arch("qwen-vl-chat")["param_counts"]
    assert info["image_tokens_per_image"] == 258
    assert info["lora"]["DEFAULT"]["trainable"] == 4_194_304  # ms-swift Benchmark: qwen-vl-chat DEFAULT 4.19 M
    # Qwen-VL-Chat config.json: 32 layers, 32 heads (no GQA), kv_channels 128 -> 32 x 32 x 128 x 2 x 2 B = 0.5 MiB
    assert info["kv_cache"] == {"layers": 32, "kv_heads": 32, "head_dim": 128, "bf16_bytes_per_token": 524_288}
    assert main(["model-info", "--model_type", "llava1d6-mistral-7b-instruct", "--image_size", "480x640"]) == 0
    assert "image tokens per 480x640 image: 2340" in capsys.readouterr().out


# ---- create-tiny -> get_model_tokenizer -> forward ------------------------------------------------------------------
def one_image_sample(model_type: str, tokenizer, image) -> dict:
    meta = MODELS.get(model_type)
    template = get_template(meta.template, tokenizer, **meta.media_options)
    return template.encode({"query": "Describe the picture.", "response": "A red square.", "images": [image]})


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_create_tiny_loads_and_runs(model_type: str, tmp_path: Path, tokenizers_root: Path) -> None:
    from PIL import Image

    out = tmp_path / "tiny"
    assert main(["create-tiny", "--model_type", model_type, "--out", str(out)]) == 0
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    model, tokenizer = get_model_tokenizer(model_type, model_id_or_path=str(out))
    assert not model.training and tokenizer.model_dir == str(out)
    spec = get_arch(model_type)
    fresh = spec.model_class(spec.build_config(tiny=True))
    assert set(model.state_dict()) == set(fresh.state_dict())
    image = tmp_path / "red.png"  # a path: Qwen-VL takes image references by path
    Image.new("RGB", (64, 48), (200, 30, 30)).save(image)
    image = str(image)
    batch = DataCollator(model_type, tokenizer)([one_image_sample(model_type, tokenizer, image)])
    with torch.no_grad():
        result = model(**batch)
    assert torch.isfinite(result.loss) and result.logits.shape[:2] == batch["input_ids"].shape
    again, _ = get_model_tokenizer(model_type, model_id_or_path=str(out))
    with torch.no_grad():
        assert torch.equal(again(**batch).logits, result.logits)  # loading is deterministic


@pytest.mark.real_tokenizer
def test_loading_honours_dtype_and_device_map(tmp_path: Path, tokenizers_root: Path, monkeypatch) -> None:
    out = tmp_path / "tiny"
    main(["create-tiny", "--model_type", "yi-vl-6b-chat", "--out", str(out)])
    model, _ = get_model_tokenizer("yi-vl-6b-chat", torch.bfloat16, {"device_map": "auto"}, model_id_or_path=str(out))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in model.parameters()} == {"cpu"}  # 'auto' on a CPU-only machine: all on CPU
    spec = get_arch("yi-vl-6b-chat")
    seen = {}
    original = spec.model_class.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.update(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(spec.model_class, "from_pretrained", classmethod(spy))
    get_model_tokenizer("yi-vl-6b-chat", None, {"device_map": {"": "cpu"}, "trust_remote_code": True},
                        model_id_or_path=str(out))
    assert seen["device_map"] == {"": "cpu"} and "trust_remote_code" not in seen  # passed on; remote code never


@pytest.mark.parametrize("model_type", ["qwen-vl-chat", "cogvlm-17b-instruct", "llama3-llava-next-8b",
                                        "internlm-xcomposer2_5-7b-chat"])
def test_create_tiny_without_tokenizer_files_uses_a_stand_in(model_type, tmp_path: Path, monkeypatch, capsys) -> None:
    """A fresh machine (no ../shared): a byte-level stand-in tokenizer with the real special ids; everything runs."""
    from PIL import Image

    monkeypatch.setenv("VLMREF_TOKENIZERS_DIR", str(tmp_path / "none"))
    out = tmp_path / "tiny"
    assert main(["create-tiny", "--model_type", model_type, "--out", str(out)]) == 0
    assert "stand-in tokenizer" in capsys.readouterr().out
    model, tokenizer = get_model_tokenizer(model_type, model_id_or_path=str(out))
    ids, bos, eos, pad = golden_specials(MODELS.get(model_type).template)
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in ids} == ids
    image = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(image)
    sample = one_image_sample(model_type, tokenizer, str(image))
    assert tokenizer.decode(sample["input_ids"][-14:]).startswith("A red square.")
    with torch.no_grad():
        assert torch.isfinite(model(**DataCollator(model_type, tokenizer)([sample])).loss)


def test_create_tiny_refuses_a_missing_tokenizer_dir(tmp_path: Path, capsys) -> None:
    assert main(["create-tiny", "--model_type", "qwen-vl-chat", "--out", str(tmp_path / "x"),
                 "--tokenizer_dir", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_packaged_special_ids_equal_golden() -> None:
    """vlmref/assets/tokenizer_specials.json (written by scripts/make_golden.py) == the golden cases' records."""
    from importlib import resources

    asset = json.loads(resources.files("vlmref").joinpath("assets/tokenizer_specials.json").read_text())
    for template_type, recorded in asset.items():
        ids, bos, eos, pad = golden_specials(template_type)
        assert recorded == {"ids": ids, "bos": bos, "eos": eos, "pad": pad}


def test_hub_download_offline_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setenv("USE_HF", "1")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(OSError, match="could not download 'Qwen/Qwen-VL-Chat'.*model_id_or_path=DIR"):
        get_model_tokenizer("qwen-vl-chat")


def test_model_info_data_for_every_type() -> None:
    """model-info runs for every model type (counts are pinned above; this checks the LoRA/image-token parts)."""
    for model_type in MODEL_TYPES:
        info = model_info(model_type)
        assert info["lora"]["ALL"]["trainable"] >= info["lora"]["DEFAULT"]["trainable"] > 0
        assert info["image_tokens_per_image"] > 0


def test_golden_specials_are_inside_the_tiny_vocab() -> None:
    """Every special id the template writes is an embedding row, except LLaVA-NeXT's image id, which the model masks
    (llama3-llava-next's <image> = 128256 is one past its 128256-row vocabulary)."""
    for model_type in MODEL_TYPES:
        ids, *_ = golden_specials(MODELS.get(model_type).template)
        config = get_arch(model_type).build_config(tiny=True)
        size = getattr(config, "vocab_size", None) or config.text_config.vocab_size
        image_id = getattr(config, "image_token_index", None)
        outside = {k: v for k, v in ids.items() if v >= size and v != image_id}
        assert not outside, (model_type, outside, size)


def test_find_all_linears_keeps_projector_indices_apart() -> None:
    """ms-swift's suffix growth: '0' and '3' collide with 'model.layers.0'/'.3' in the full model, so they become
    'mm_projector.0'/'.3'. (In a 2-layer tiny model nothing ends with '3', and '3' alone is the suffix, as upstream.)"""
    model = build_on_meta("yi-vl-6b-chat")
    targets = resolve_lora_targets(model, "yi-vl-6b-chat", "ALL")
    assert "mm_projector.0" in targets and "mm_projector.3" in targets and "0" not in targets and "3" not in targets
    matched = {n for n, _, _ in matched_linears(model, targets)}
    assert {"model.mm_projector.0", "model.mm_projector.3"} <= matched
    assert not any(n.startswith("model.layers.") and n.count(".") == 2 for n in matched)


def test_arch_manifest_matches_files() -> None:
    """golden/arch changes only through scripts/make_arch_golden.py, which rewrites golden/arch/MANIFEST.json."""
    import hashlib

    manifest = json.loads((GOLDEN / "MANIFEST.json").read_text())
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in GOLDEN.glob("*.json") if p.name != "MANIFEST.json"}
    assert files == manifest
    assert {get_arch(m).upstream_keys + ".json" for m in MODEL_TYPES} == set(files)
