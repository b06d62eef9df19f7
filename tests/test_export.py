"""Checkpoint loading (``vlmref.llm.ckpt``) and ``vlmref export --merge_lora true`` (``vlmref.llm.export``).

Checkpoints are built directly with peft (tests/ckpt_fixtures.py) in the workflow contract's format, on tiny models
with the real tokenizers. The merge is checked by logits: adapter model == merged model (fp32, on a sample with an
image) == the merged folder reloaded, for every model type's DEFAULT LoRA targets.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ckpt_fixtures import (
    GLOBAL_STEP,
    image_batch,
    make_full_checkpoint,
    make_lora_checkpoint,
    tiny_base,
    yi_vl_vit_dir,
)
from peft import PeftModel

from vlmref.cli.export import add_parser
from vlmref.cli.export import main as export_main
from vlmref.llm.ckpt import (
    CheckpointError,
    CheckpointNotFoundError,
    is_adapter_checkpoint,
    load_from_ckpt,
    read_sft_args,
)
from vlmref.llm.export import MergeError, merge_lora, merged_dir_for
from vlmref.models.arch import get_arch
from vlmref.models.loader import get_model_tokenizer
from vlmref.models.model_types import MODELS
from vlmref.models.tiny import TOKENIZER_FILES

pytestmark = pytest.mark.real_tokenizer

# one model type per architecture runs by default; the variants (same code, other sizes/tokenizers) are slow
FAST = {"cogvlm-17b-instruct", "qwen-vl-chat", "internlm-xcomposer2-7b-chat", "yi-vl-6b-chat",
        "llava1d6-mistral-7b-instruct"}
ALL_TYPES = [pytest.param(m, marks=() if m in FAST else pytest.mark.slow) for m in MODELS.names()]
ATOL = 1e-5


def logits(model, batch, max_elements: int = 8_000_000) -> torch.Tensor:
    """The logits, every position; for big vocabularies (128k-152k rows x ~1400 positions = up to 1 GB a copy) every
    k-th vocabulary column at every position plus the full vocabulary at the last 16 positions."""
    with torch.no_grad():
        out = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
    if out.numel() <= max_elements:
        return out
    stride = -(-out.numel() // max_elements)
    return torch.cat([out[..., ::stride].flatten(), out[:, -16:].flatten()])


def quiet(msg: str) -> None:
    pass


# ---- merge parity, every model type -------------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_merged_model_matches_the_adapter_model(model_type: str, tmp_path: Path, tokenizers_root: Path) -> None:
    ckpt = make_lora_checkpoint(model_type, tmp_path)
    adapter, tokenizer, args = load_from_ckpt(ckpt)
    assert isinstance(adapter, PeftModel) and not adapter.training
    assert args["sft_type"] == "lora" and args["lora_target_modules"] == list(MODELS.get(model_type).lora_target_modules)
    batch = image_batch(model_type, tokenizer, tmp_path / "images")
    assert batch["pixel_values"] is not None and int(batch["images_per_sample"].sum()) == 1
    with_adapter = logits(adapter, batch)
    with adapter.disable_adapter():
        without = logits(adapter, batch)
    assert (with_adapter - without).abs().max() > 1e-2, "the adapter must change the output (non-trivial merge)"

    out = merge_lora(ckpt, log=quiet)
    assert out == merged_dir_for(ckpt.resolve()) and out.name == f"checkpoint-{GLOBAL_STEP}-merged"
    in_memory = adapter.merge_and_unload()
    merged_logits = logits(in_memory, batch)
    reloaded, _, merged_args = load_from_ckpt(out)
    assert not isinstance(reloaded, PeftModel) and merged_args["sft_type"] == "full"
    reloaded_logits = logits(reloaded, batch)

    diff = (with_adapter - reloaded_logits).abs().max().item()
    print(f"\nmerge parity {model_type}: max|adapter - merged| = {diff:.2e} over {tuple(with_adapter.shape)}")
    assert diff <= ATOL
    assert (merged_logits - with_adapter).abs().max() <= ATOL
    assert (reloaded_logits - merged_logits).abs().max() <= 1e-6  # saved and reloaded: the same model
    assert set(reloaded.state_dict()) == set(in_memory.state_dict())  # no adapter keys left, nothing missing


@pytest.mark.parametrize("model_type", ["internlm-xcomposer2-7b-chat",
                                        pytest.param("internlm-xcomposer2_5-7b-chat", marks=pytest.mark.slow)])
def test_xcomposer_merge_keeps_the_builtin_plora(model_type: str, tmp_path: Path, tokenizers_root: Path) -> None:
    """The LoRA on ``wqkv`` (a PLoRA: nn.Linear + image-only ``Plora_A/B``) folds into ``wqkv.weight``; the built-in
    PLoRA stays as it was and still acts on image positions only, so the merged model equals the adapter model on
    image and text positions alike (upstream documents merge-lora as unsupported: modelscope/ms-swift#448)."""
    ckpt = make_lora_checkpoint(model_type, tmp_path)
    adapter, tokenizer, _ = load_from_ckpt(ckpt)
    wrapped = [n for n, m in adapter.named_modules() if n.endswith("wqkv") and hasattr(m, "base_layer")]
    assert wrapped and all(type(adapter.get_submodule(n).base_layer).__name__ == "PLoRA" for n in wrapped)
    assert not any("Plora" in n for n, p in adapter.named_parameters() if p.requires_grad)
    batch = image_batch(model_type, tokenizer, tmp_path / "images")
    assert batch["im_mask"].any() and not batch["im_mask"].all()
    expected = logits(adapter, batch)
    out = merge_lora(ckpt, log=quiet)
    merged, _, _ = load_from_ckpt(out)
    base, _ = get_model_tokenizer(model_type, torch.float32, model_id_or_path=tiny_base(model_type, tmp_path))
    plora = {k: v for k, v in base.state_dict().items() if "Plora_" in k}
    assert plora and any(v.abs().sum() > 0 for k, v in plora.items() if "Plora_B" in k)
    state = merged.state_dict()
    assert all(torch.equal(state[k], v) for k, v in plora.items())  # built-in PLoRA untouched by the merge
    wqkv = [k for k in plora if k.endswith("wqkv.Plora_A.weight")][0].replace("Plora_A.", "")
    assert not torch.equal(state[wqkv], base.state_dict()[wqkv])  # the LoRA went into the weight
    got = logits(merged, batch)
    assert (got - expected).abs().max() <= ATOL
    no_image_mask = dict(batch, im_mask=torch.zeros_like(batch["im_mask"]))
    assert (logits(merged, no_image_mask) - got).abs().max() > 1e-3  # the built-in PLoRA is live in the test


# ---- output folder ------------------------------------------------------------------------------------------------
def test_merged_folder_layout_tokenizer_and_eos(tmp_path: Path, tokenizers_root: Path) -> None:
    model_type = "internlm-xcomposer2-7b-chat"  # eos override [UNUSED_TOKEN_145], sentencepiece tokenizer
    ckpt = make_lora_checkpoint(model_type, tmp_path)
    base_dir = tiny_base(model_type, tmp_path)
    lines: list[str] = []
    out = merge_lora(ckpt, log=lines.append)
    assert any("Successfully merged LoRA" in line for line in lines)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "sft_args.json",
            "vlmref_processor.json"} <= names
    assert not names & {"adapter_config.json", "adapter_model.safetensors", "trainer_state.json"}
    for name in TOKENIZER_FILES:
        if (base_dir / name).is_file():
            assert (out / name).read_bytes() == (base_dir / name).read_bytes()
    assert (out / "generation_config.json").read_text() == (ckpt / "generation_config.json").read_text()
    assert json.loads((out / "configuration.json").read_text()) == {"framework": "pytorch",
                                                                    "task": "image-text-to-text"}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    args = json.loads((out / "sft_args.json").read_text())
    trained = read_sft_args(ckpt)
    assert args["sft_type"] == "full" and args["model_id_or_path"] == str(out) and args["dtype"] == "fp32"
    assert args["merged_from"] == str(ckpt.resolve()) and args["base_model_id_or_path"] == str(base_dir)
    assert {k: v for k, v in args.items() if k not in ("sft_type", "model_id_or_path", "merged_from",
                                                       "base_model_id_or_path")} == \
        {k: v for k, v in trained.items() if k not in ("sft_type", "model_id_or_path")}
    assert not is_adapter_checkpoint(out) and is_adapter_checkpoint(ckpt)

    adapter, tok_a, _ = load_from_ckpt(ckpt)
    merged, tok_m, _ = load_from_ckpt(out)
    assert tok_m.model_dir == str(out) and tok_a.model_dir == str(base_dir)
    assert tok_m.eos_token == tok_a.eos_token == "[UNUSED_TOKEN_145]"
    assert (tok_m.eos_token_id, tok_m.pad_token_id, tok_m.bos_token_id) == \
        (tok_a.eos_token_id, tok_a.pad_token_id, tok_a.bos_token_id)
    text = "Describe the picture. [UNUSED_TOKEN_146]user\n你好"
    assert tok_m.encode(text, add_special_tokens=False) == tok_a.encode(text, add_special_tokens=False)
    assert merged.generation_config.eos_token_id == adapter.get_base_model().generation_config.eos_token_id \
        == tok_a.eos_token_id
    # greedy generation from an image prompt: same tokens from the adapter model and the merged folder
    prompt = image_batch(model_type, tok_a, tmp_path / "images", response=False)
    prompt.pop("labels", None)
    kwargs = {"max_new_tokens": 6, "do_sample": False, "eos_token_id": None, "pad_token_id": tok_a.pad_token_id}
    with torch.no_grad():
        assert torch.equal(adapter.generate(**prompt, **kwargs), merged.generate(**prompt, **kwargs))


def test_dtype_is_the_training_dtype_unless_given(tmp_path: Path, tokenizers_root: Path, capsys) -> None:
    from safetensors import safe_open

    model_type = "qwen-vl-chat"
    ckpt = make_lora_checkpoint(model_type, tmp_path, dtype="bf16")
    assert export_main(["--ckpt_dir", str(ckpt), "--merge_lora", "true"]) == 0
    out = merged_dir_for(ckpt)
    assert f"Successfully merged LoRA and saved in {out}" in capsys.readouterr().out

    def saved_dtypes() -> set:
        with safe_open(str(out / "model.safetensors"), "pt") as f:
            return {f.get_slice(k).get_dtype() for k in f.keys()}

    assert saved_dtypes() == {"BF16"} and read_sft_args(out)["dtype"] == "bf16"
    merged, _, _ = load_from_ckpt(out)
    assert {p.dtype for p in merged.parameters()} == {torch.bfloat16}
    assert export_main(["--ckpt_dir", str(ckpt), "--merge_lora", "true", "--dtype", "fp32", "--overwrite",
                        "--merge_device_map", "cpu"]) == 0
    assert saved_dtypes() == {"F32"} and read_sft_args(out)["dtype"] == "fp32"
    merged, _, _ = load_from_ckpt(out)
    assert {p.dtype for p in merged.parameters()} == {torch.float32}


def test_existing_merged_folder_is_kept_unless_overwrite(tmp_path: Path, tokenizers_root: Path, capsys) -> None:
    ckpt = make_lora_checkpoint("qwen-vl-chat", tmp_path)
    out = merge_lora(ckpt, log=quiet)
    marker = out / "keep.txt"
    marker.write_text("old")
    assert export_main(["--ckpt_dir", str(ckpt), "--merge_lora", "true"]) == 0
    assert "already exists: skipping the merge" in capsys.readouterr().out and marker.is_file()
    assert merge_lora(ckpt, overwrite=True, log=quiet) == out
    assert not marker.exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["checkpoint-10", "checkpoint-10-merged", "sft_args.json"]


def test_yi_vl_merged_vision_tower_goes_into_the_vit_folder(tmp_path: Path, tokenizers_root: Path) -> None:
    """DEFAULT q/k/v_proj also wraps the CLIP tower; Yi-VL loads the tower from vit/<name> (preferred over the main
    checkpoint), so the merged folder's vit/<name> must hold the merged tower (ms-swift copies the base's unchanged)."""
    from safetensors.torch import load_file

    model_type = "yi-vl-6b-chat"
    ckpt = make_lora_checkpoint(model_type, tmp_path)
    adapter, _, _ = load_from_ckpt(ckpt)
    assert any(".vision_tower." in n and n.endswith("q_proj") for n, m in adapter.named_modules()
               if hasattr(m, "base_layer"))
    out = merge_lora(ckpt, log=quiet)
    base_vit = load_file(str(yi_vl_vit_dir(tiny_base(model_type, tmp_path)) / "model.safetensors"))
    merged_vit_dir = yi_vl_vit_dir(out)
    assert (merged_vit_dir / "config.json").is_file()
    merged_vit = load_file(str(merged_vit_dir / "model.safetensors"))
    assert set(merged_vit) == set(base_vit)
    changed = [k for k in base_vit if not torch.equal(base_vit[k], merged_vit[k])]
    assert changed and all(k.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")) for k in changed)
    merged, _, _ = load_from_ckpt(out)
    tower = merged.model.vision_tower.vision_tower.state_dict()
    assert all(torch.equal(tower[k], merged_vit[k]) for k in merged_vit)


# ---- load_from_ckpt -------------------------------------------------------------------------------------------------
def test_load_full_checkpoint(tmp_path: Path, tokenizers_root: Path) -> None:
    model_type = "llava1d6-mistral-7b-instruct"
    ckpt = make_full_checkpoint(model_type, tmp_path)
    model, tokenizer, args = load_from_ckpt(ckpt, model_kwargs={"device_map": "cpu"})
    assert not isinstance(model, PeftModel) and args["sft_type"] == "full" and tokenizer.model_dir == str(ckpt)
    base, _ = get_model_tokenizer(model_type, torch.float32, model_id_or_path=tiny_base(model_type, tmp_path))
    key = next(k for k in base.state_dict() if k.endswith("q_proj.weight"))
    assert not torch.equal(model.state_dict()[key], base.state_dict()[key])  # its own weights, not the base's
    model16, _, _ = load_from_ckpt(ckpt, torch.bfloat16)
    assert {p.dtype for p in model16.parameters()} == {torch.bfloat16}
    with pytest.raises(MergeError, match=r"full checkpoint \(sft_type='full'\): there is no LoRA to merge"):
        merge_lora(ckpt)
    assert export_main(["--ckpt_dir", str(ckpt), "--merge_lora", "true"]) == 1
    assert not merged_dir_for(ckpt).exists()


def test_lora_adapter_weights_follow_the_model_dtype(tmp_path: Path, tokenizers_root: Path) -> None:
    ckpt = make_lora_checkpoint("cogvlm-17b-instruct", tmp_path, dtype="bf16")
    model, _, _ = load_from_ckpt(ckpt)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    model32, _, _ = load_from_ckpt(ckpt, "fp32")
    assert {p.dtype for p in model32.parameters()} == {torch.float32}


# ---- refusals -------------------------------------------------------------------------------------------------------
def test_refusals_name_the_folder_and_what_is_missing(tmp_path: Path, tokenizers_root: Path, capsys) -> None:
    with pytest.raises(CheckpointError, match="ckpt_dir is not specified"):
        merge_lora(None)
    assert export_main(["--merge_lora", "true"]) == 2
    assert "ckpt_dir is not specified" in capsys.readouterr().err
    assert export_main(["--ckpt_dir", str(tmp_path)]) == 2
    assert "pass --merge_lora true" in capsys.readouterr().err

    missing = tmp_path / "nope"
    with pytest.raises(CheckpointNotFoundError, match=f"checkpoint folder {missing} does not exist"):
        load_from_ckpt(missing)

    ckpt = make_lora_checkpoint("qwen-vl-chat", tmp_path)
    run = ckpt.parent
    (run / "sft_args.json").unlink()
    with pytest.raises(CheckpointNotFoundError, match=r"run folder: pass one of its checkpoints \(checkpoint-10\)"):
        read_sft_args(run)

    (ckpt / "sft_args.json").rename(ckpt / "sft_args.bak")
    with pytest.raises(CheckpointNotFoundError, match=rf"checkpoint {ckpt}: no sft_args.json"):
        merge_lora(ckpt)
    assert export_main(["--ckpt_dir", str(ckpt), "--merge_lora", "true"]) == 1
    assert f"checkpoint {ckpt}: no sft_args.json" in capsys.readouterr().err
    (ckpt / "sft_args.bak").rename(ckpt / "sft_args.json")

    (ckpt / "adapter_model.safetensors").rename(ckpt / "adapter.bak")
    with pytest.raises(CheckpointNotFoundError, match="adapter weights .* are missing"):
        load_from_ckpt(ckpt)
    (ckpt / "adapter.bak").rename(ckpt / "adapter_model.safetensors")

    args = read_sft_args(ckpt)
    (ckpt / "sft_args.json").write_text(json.dumps({**args, "model_id_or_path": str(tmp_path / "moved")}))
    with pytest.raises(CheckpointNotFoundError, match=rf"checkpoint {ckpt}: its base model .*moved.* cannot be loaded"):
        merge_lora(ckpt)
    (ckpt / "sft_args.json").write_text(json.dumps({**args, "model_type": "gpt-17"}))
    with pytest.raises(CheckpointError, match="model_type 'gpt-17' is not a known model type"):
        load_from_ckpt(ckpt)
    (ckpt / "sft_args.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="sft_args.json is not valid JSON"):
        read_sft_args(ckpt)
    assert not merged_dir_for(ckpt).exists()


def test_failed_merge_leaves_no_folder(tmp_path: Path, tokenizers_root: Path, monkeypatch) -> None:
    ckpt = make_lora_checkpoint("qwen-vl-chat", tmp_path)
    spec = get_arch("qwen-vl-chat")

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(spec.model_class, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        merge_lora(ckpt, log=quiet)
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["checkpoint-10", "sft_args.json"]


def test_cli_add_parser_wires_the_export_command() -> None:
    from vlmref.arguments import DataclassArgumentParser

    parser = DataclassArgumentParser(prog="vlmref")  # sub-command parsers take their flags from a dataclass
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["export", "--ckpt_dir", "x", "--merge_lora", "true", "--merge_device_map", "cpu",
                              "--dtype", "bf16"])
    assert (args.ckpt_dir, args.merge_lora, args.merge_device_map, args.dtype, args.overwrite) == \
        ("x", True, "cpu", "bf16", False)
    assert callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--merge_lora", "maybe"])
