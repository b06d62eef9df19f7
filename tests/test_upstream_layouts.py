"""Upstream checkpoints load as they are (issue 12, item 4): tiny random checkpoints written in the hub repos'
layout (files and folders), loaded through the public ``get_model_tokenizer`` / CLI.

1. llava-hf/llava-v1.6-34b-hf's tokenizer folder: ``<image>`` keeps 64000, ``<pad>`` 64001;
2. IXC-2.5's CLIP tower read from its own folder (config and weights);
3. XComposer task adapters missing from a checkpoint are zero (a no-op) and reported;
4. CogVLM's tokenizer passed separately (``tokenizer_id_or_path`` / ``--tokenizer_id_or_path``);
5. Yi-VL's load report does not list the ViT keys that load from ``vit/``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from vlmref import get_model_tokenizer
from vlmref.models.tiny import TOKENIZER_FILES, create_tiny_checkpoint

IXC25 = "internlm-xcomposer2_5-7b-chat"


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _edit_weights(folder: Path, keep) -> dict[str, torch.Tensor]:
    """Rewrite folder/model.safetensors with the keys ``keep(key)`` accepts; returns the removed tensors."""
    path = folder / "model.safetensors"
    state = load_file(str(path))
    removed = {k: v for k, v in state.items() if not keep(k)}
    save_file({k: v for k, v in state.items() if keep(k)}, str(path), metadata={"format": "pt"})
    return removed


# ---- 1. llava-v1.6-34b-hf tokenizer folder ---------------------------------------------------------------------------
def _added(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True}


def _llava_34b_tokenizer_folder(tokenizers_root: Path, out: Path) -> Path:
    """tokenizer.model (Yi's) + tokenizer_config.json / added_tokens.json / special_tokens_map.json shaped like
    llava-hf/llava-v1.6-34b-hf's: ``<image>`` 64000 and ``<pad>`` 64001 recorded, pad_token ``<pad>``."""
    out.mkdir(parents=True)
    shutil.copyfile(tokenizers_root / "yi" / "tokenizer.model", out / "tokenizer.model")
    yi = json.loads((tokenizers_root / "yi" / "tokenizer_config.json").read_text(encoding="utf-8"))
    decoder = {**yi["added_tokens_decoder"], "64000": _added("<image>"), "64001": _added("<pad>")}
    _write_json(out / "tokenizer_config.json", {
        "add_bos_token": False, "add_eos_token": False, "added_tokens_decoder": decoder,
        "bos_token": "<|startoftext|>", "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>",
        "legacy": True, "model_max_length": 4096, "pad_token": "<pad>", "padding_side": "left",
        "processor_class": "LlavaNextProcessor", "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>", "use_default_system_prompt": False,
    })
    _write_json(out / "added_tokens.json", {"<image>": 64000, "<pad>": 64001})
    _write_json(out / "special_tokens_map.json", {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                                                  "pad_token": "<pad>", "unk_token": "<unk>"})
    _write_json(out / "config.json", {"model_type": "llava_next", "image_token_index": 64000})
    return out


def test_llava_34b_hub_tokenizer_keeps_recorded_added_token_ids(tokenizers_root: Path, tmp_path: Path) -> None:
    folder = _llava_34b_tokenizer_folder(tokenizers_root, tmp_path / "llava-v1.6-34b-hf")
    _, tok = get_model_tokenizer("llava1d6-yi-34b-instruct", load_model=False, model_id_or_path=folder)
    image_index = json.loads((folder / "config.json").read_text())["image_token_index"]
    assert tok.convert_tokens_to_ids("<image>") == image_index == 64000
    assert tok.convert_tokens_to_ids("<pad>") == 64001
    assert len(tok) == 64002
    assert tok.encode("<image>\nhi", add_special_tokens=False)[0] == 64000
    assert tok.eos_token == "<|im_end|>" and tok.convert_tokens_to_ids("<|im_end|>") == 7  # ms-swift's eos


# ---- 2. IXC-2.5's CLIP folder ----------------------------------------------------------------------------------------
# differs from the hard-coded CLIP-L/560 in every size but the 560-px / 14-px geometry (40 x 40 patches per tile)
TOWER = {"hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 1, "num_attention_heads": 2,
         "patch_size": 14, "image_size": 560, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}


def _ixc25_upstream(tmp_path: Path, where: str) -> tuple[Path, Path]:
    """A tiny IXC-2.5 checkpoint (``reference``, vit inside) and the same model in the upstream layout: config.json
    without ``vision_config``, no ``vit.*`` weights, the tower as a CLIPVisionModel folder."""
    reference = create_tiny_checkpoint(IXC25, tmp_path / "reference", vision_config=TOWER)
    model_dir = tmp_path / "internlm-xcomposer2d5-7b"
    shutil.copytree(reference, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    del config["vision_config"]
    tower_dir = {"default": model_dir / "IXC2d5_clip_l_560", "relative": model_dir / "clip" / "tower",
                 "absolute": tmp_path / "elsewhere" / "internlm-xcomposer2d5-clip"}[where]
    if where != "default":
        config["vision_tower"] = "clip/tower" if where == "relative" else str(tower_dir)
    _write_json(model_dir / "config.json", config)
    tower = _edit_weights(model_dir, lambda k: not k.startswith("vit."))
    tower_dir.mkdir(parents=True)
    clip = {k.removeprefix("vit.vision_tower."): v for k, v in tower.items()}
    width = TOWER["hidden_size"]
    clip["vision_model.post_layernorm.weight"] = torch.ones(width)  # a real CLIP folder has it; IXC does not use it
    clip["vision_model.post_layernorm.bias"] = torch.zeros(width)
    save_file(clip, str(tower_dir / "model.safetensors"), metadata={"format": "pt"})
    _write_json(tower_dir / "config.json", {"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model",
                                            "torch_dtype": "float32", "projection_dim": 768, **TOWER})
    return reference, model_dir


@pytest.mark.parametrize("where", ["default", "relative", "absolute"])
def test_ixc25_vision_tower_from_its_clip_folder(tmp_path: Path, where: str) -> None:
    reference, model_dir = _ixc25_upstream(tmp_path, where)
    model, _ = get_model_tokenizer(IXC25, torch.float32, model_id_or_path=model_dir)
    ref, _ = get_model_tokenizer(IXC25, torch.float32, model_id_or_path=reference)
    vision = model.config.vision_config
    assert {k: vision[k] for k in TOWER} == TOWER
    assert model.load_report.missing_keys == []
    [(side, keys)] = model.load_report.side_loaded.items()
    assert Path(side).parent.name in ("IXC2d5_clip_l_560", "tower", "internlm-xcomposer2d5-clip")
    assert keys and all(k.startswith("vit.") for k in keys)
    assert model.load_report.side_ignored[side] == ["vision_model.post_layernorm.bias",
                                                    "vision_model.post_layernorm.weight"]
    for key, value in ref.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    pixels = [torch.randn(3, 560, 560, generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        assert torch.equal(model.get_image_features(pixels)[0], ref.get_image_features(pixels)[0])
    # saved again (as a merge or full fine-tune does): self-contained, the tower folder is no longer needed
    saved = tmp_path / "saved"
    model.save_pretrained(str(saved))
    again, _ = get_model_tokenizer(IXC25, torch.float32, model_id_or_path=saved, tokenizer_id_or_path=model_dir)
    assert again.load_report.missing_keys == [] and again.load_report.side_loaded == {}
    assert again.config.vision_config == model.config.vision_config


def test_ixc25_vision_tower_fallback_and_bad_reference(tmp_path: Path) -> None:
    from vlmref.models.internlm_xcomposer2.config import CLIP_L14, InternLMXComposer2Config

    _, model_dir = _ixc25_upstream(tmp_path, "relative")
    config = json.loads((model_dir / "config.json").read_text())
    bare = tmp_path / "bare"
    bare.mkdir()
    _write_json(bare / "config.json", {k: v for k, v in config.items() if k != "vision_tower"})
    # no CLIP folder: the documented fallback, CLIP-L/14 at 560 px
    assert InternLMXComposer2Config.from_pretrained(str(bare)).vision_config == {**CLIP_L14, "image_size": 560}
    _write_json(bare / "config.json", {**config, "vision_tower": "no/such/folder"})
    with pytest.raises(FileNotFoundError, match=r"config\.json: vision_tower 'no/such/folder'"):
        InternLMXComposer2Config.from_pretrained(str(bare))


# ---- 3. XComposer task adapters missing from a checkpoint --------------------------------------------------------------
def test_ixc25_missing_task_adapters_are_zero_and_reported(tmp_path: Path, caplog) -> None:
    full = create_tiny_checkpoint(IXC25, tmp_path / "full")
    state = load_file(str(full / "model.safetensors"))
    gen = torch.Generator().manual_seed(3)
    for key in sorted(state):  # trained adapters: non-zero B (the tiny init leaves them 0)
        if key.endswith("_B.weight"):
            state[key] = torch.randn(state[key].shape, generator=gen) * 0.05
    save_file(state, str(full / "model.safetensors"), metadata={"format": "pt"})
    stripped = tmp_path / "stripped"
    shutil.copytree(full, stripped)
    removed = _edit_weights(stripped, lambda k: ".lora_web_" not in k)
    assert removed
    with caplog.at_level(logging.WARNING, logger="vlmref.models"):
        model, _ = get_model_tokenizer(IXC25, torch.float32, model_id_or_path=stripped)
    ref, _ = get_model_tokenizer(IXC25, torch.float32, model_id_or_path=full)
    ids = torch.tensor([[1, 400, 401, 402, 403]])
    with torch.no_grad():
        web = model(input_ids=ids, task="web").logits
        base = ref(input_ids=ids).logits
        sft = model(input_ids=ids, task="write").logits  # loaded adapters still act as in the checkpoint
        ref_sft = ref(input_ids=ids, task="write").logits
    assert torch.equal(web, base)  # the missing web adapter is a no-op
    assert torch.equal(sft, ref_sft) and not torch.equal(sft, base)
    report = model.load_report
    assert report.zero_initialised == sorted(k for k in removed if k.endswith("lora_web_B.weight"))
    assert set(report.missing_keys) == set(removed)
    assert any("lora_web_B" in r.getMessage() and "zero-initialised" in r.getMessage() for r in caplog.records)


# ---- 4. CogVLM's tokenizer from vicuna-7b-v1.5 ------------------------------------------------------------------------
COGVLM = "cogvlm-17b-instruct"


def _cogvlm_without_tokenizer(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny CogVLM checkpoint laid out as THUDM/cogvlm-chat-hf (no tokenizer files) and a vicuna folder."""
    model_dir = create_tiny_checkpoint(COGVLM, tmp_path / "cogvlm-chat-hf")
    vicuna = tmp_path / "vicuna-7b-v1.5"
    vicuna.mkdir()
    for name in TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.move(str(model_dir / name), vicuna / name)
    return model_dir, vicuna


def test_cogvlm_tokenizer_from_a_separate_folder(tmp_path: Path) -> None:
    model_dir, vicuna = _cogvlm_without_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        get_model_tokenizer(COGVLM, load_model=False, model_id_or_path=model_dir)
    message = str(err.value)
    assert "lmsys/vicuna-7b-v1.5" in message and "tokenizer_id_or_path" in message and str(model_dir) in message
    model, tok = get_model_tokenizer(COGVLM, torch.float32, model_id_or_path=model_dir, tokenizer_id_or_path=vicuna)
    assert tok.tokenizer_dir == str(vicuna) and tok.model_dir == str(model_dir)
    assert tok.pad_token == "<unk>" and model.model_dir == str(model_dir)
    with pytest.raises(FileNotFoundError, match="tokenizer_id_or_path .* has no tokenizer.model"):
        get_model_tokenizer(COGVLM, load_model=False, model_id_or_path=model_dir, tokenizer_id_or_path=model_dir)


@pytest.mark.parametrize("command", ["infer", "sft"])
def test_cogvlm_cli_tokenizer_option_and_one_line_error(tmp_path: Path, capsys, command: str) -> None:
    from vlmref.cli.main import main

    model_dir, vicuna = _cogvlm_without_tokenizer(tmp_path)
    base = ["--model_type", COGVLM, "--model_id_or_path", str(model_dir)]
    extra = (["--dataset", "coco-en-2-mini-sample#2", "--max_steps", "1", "--output_dir", str(tmp_path / "out"),
              "--eval_steps", "1", "--save_steps", "1"] if command == "sft" else
             ["--val_dataset", "coco-en-2-mini-sample#1", "--max_new_tokens", "2", "--temperature", "0"])
    code = main([command, *base, *extra])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and "Traceback" not in err
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err  # one line, the last one
    assert "lmsys/vicuna-7b-v1.5" in errors[0] and "--tokenizer_id_or_path" in errors[0]
    assert main([command, *base, "--tokenizer_id_or_path", str(vicuna), *extra]) == 0
    if command == "sft":  # the checkpoint remembers it: export (merge) and infer --ckpt_dir find the tokenizer
        [ckpt] = sorted((tmp_path / "out").glob(f"{COGVLM}/v*/checkpoint-*"))
        assert json.loads((ckpt / "sft_args.json").read_text())["tokenizer_id_or_path"] == str(vicuna)
        assert main(["export", "--ckpt_dir", str(ckpt), "--merge_lora", "true"]) == 0
        merged = Path(f"{ckpt}-merged")
        assert (merged / "tokenizer.model").is_file()
        _, tok = get_model_tokenizer(COGVLM, load_model=False, model_id_or_path=merged)
        assert tok.pad_token == "<unk>"


# ---- 5. Yi-VL's vit/ folder and the load report ------------------------------------------------------------------------
def test_yi_vl_load_report_counts_vit_folder_weights(tmp_path: Path, caplog) -> None:
    from ckpt_fixtures import tiny_base, yi_vl_vit_dir

    model_type = "yi-vl-6b-chat"
    base = tiny_base(model_type, tmp_path)  # vit/<name>/ written as upstream keeps it
    upstream = tmp_path / "Yi-VL-6B"
    shutil.copytree(base, upstream)
    removed = _edit_weights(upstream, lambda k: not k.startswith("model.vision_tower.") and k != "model.norm.weight")
    assert "model.norm.weight" in removed and len(removed) > 1
    hf_logger = logging.getLogger("transformers")  # transformers' LOAD REPORT does not propagate to the root
    hf_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            model, _ = get_model_tokenizer(model_type, torch.float32, model_id_or_path=upstream)
    finally:
        hf_logger.removeHandler(caplog.handler)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "model.norm.weight" in logged  # the really missing key is reported ...
    assert "vision_tower" not in logged  # ... and no ViT key
    report = model.load_report
    assert report.missing_keys == ["model.norm.weight"]  # really absent; no vision key
    [(side, keys)] = report.side_loaded.items()
    assert Path(side).parent == yi_vl_vit_dir(upstream)
    assert set(keys) == {k for k in removed if k.startswith("model.vision_tower.")}
    ref, _ = get_model_tokenizer(model_type, torch.float32, model_id_or_path=base)
    for key in keys:
        assert torch.equal(model.state_dict()[key], ref.state_dict()[key]), key
    # the model class's own output_loading_info tells the same
    _, info = type(model).from_pretrained(upstream, output_loading_info=True)
    assert info["missing_keys"] == ["model.norm.weight"]
