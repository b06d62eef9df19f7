"""Build checkpoint folders in the workflow contract's format directly (peft + save_pretrained), without ``vlmref sft``.

Layout (what ``vlmref sft`` writes, see /work/notes/workflow_contract.md "Checkpoint format")::

    <root>/output/<model_type>/v0-20240101-000000/
        sft_args.json
        checkpoint-10/                     LoRA: adapter_config.json, adapter_model.safetensors
            sft_args.json                  full: config.json, model.safetensors, tokenizer files, vlmref_processor.json
            generation_config.json
            trainer_state.json

The LoRA adapter is peft's ``LoraConfig`` on the registry's DEFAULT targets (ms-swift 2.2.0 values r=8, alpha=32,
dropout 0.05) with ``lora_B`` filled with seeded random values, so the adapter changes the model's output and a merge
has something to do. Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from vlmref.models.info import resolve_lora_targets
from vlmref.models.loader import get_model_tokenizer
from vlmref.models.model_types import MODELS
from vlmref.models.tiny import TOKENIZER_FILES, create_tiny_checkpoint

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
RUN_NAME = "v0-20240101-000000"
GLOBAL_STEP = 10


def tiny_base(model_type: str, root: Path, seed: int = 0) -> Path:
    """A tiny base model folder under ``root/models`` (created once per root and model type), shaped like the real
    one where it matters for merging: XComposer2's built-in PLoRA has non-zero ``Plora_B`` (a trained model's
    image-position adapter; the tiny init leaves it 0), and Yi-VL keeps its ViT in ``vit/<name>`` as well."""
    from vlmref.models.arch import get_arch

    out = Path(root) / "models" / MODELS.canonical(model_type)
    if not (out / "config.json").is_file():
        create_tiny_checkpoint(model_type, out, seed=seed, overwrite=True)
        family = get_arch(model_type).family
        if family == "internlm_xcomposer2":
            _randomize_plora(out, seed)
        elif family == "yi_vl":
            _write_yi_vl_vit(model_type, out)
    return out.resolve()


def _randomize_plora(folder: Path, seed: int, std: float = 0.05) -> None:
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    state = load_file(str(path))
    gen = torch.Generator().manual_seed(seed + 7)
    for key in sorted(state):
        if key.endswith("Plora_B.weight"):
            value = state[key]
            state[key] = torch.randn(value.shape, generator=gen).mul_(std).to(value.dtype)
    save_file(state, str(path), metadata={"format": "pt"})


def yi_vl_vit_dir(folder: Path) -> Path:
    config = json.loads((Path(folder) / "config.json").read_text())
    return Path(folder) / "vit" / config["mm_vision_tower"].rstrip("/").split("/")[-1]


def _write_yi_vl_vit(model_type: str, folder: Path) -> None:
    """Yi-VL's ``vit/<name>`` folder: a CLIPVisionModel checkpoint (config.json + ``vision_model.*`` weights)."""
    from safetensors.torch import save_file

    model, _ = get_model_tokenizer(model_type, torch.float32, model_id_or_path=folder)
    vit = yi_vl_vit_dir(folder)
    vit.mkdir(parents=True)
    vision = model.config.vision_config.to_dict()
    vision["model_type"] = "clip_vision_model"
    (vit / "config.json").write_text(json.dumps(vision, indent=2, default=str) + "\n", encoding="utf-8")
    tower = model.model.vision_tower.vision_tower.state_dict()
    save_file({k: v.contiguous() for k, v in tower.items()}, str(vit / "model.safetensors"), metadata={"format": "pt"})


def sft_args_for(model_type: str, base: Path, sft_type: str, dtype: str, targets: list[str] | None,
                 rank: int = 8, alpha: int = 32, output_dir: Path | None = None) -> dict[str, Any]:
    meta = MODELS.get(model_type)
    return {
        "model_type": meta.model_type,
        "model_id_or_path": str(Path(base).resolve()),
        "sft_type": sft_type,
        "tuner_backend": "peft",
        "template_type": meta.template,
        "system": None,
        "max_length": 2048,
        "truncation_strategy": "delete",
        "dtype": dtype,
        "dataset": ["coco-en-2-mini-sample"],
        "val_dataset": [],
        "dataset_seed": 42,
        "dataset_test_ratio": 0.01,
        "check_dataset_strategy": "none",
        "lora_target_modules": list(targets or []),
        "lora_rank": rank,
        "lora_alpha": alpha,
        "lora_dropout_p": 0.05,
        "lora_bias_trainable": "none",
        "learning_rate": 1e-4 if sft_type == "lora" else 1e-5,
        "num_train_epochs": 1,
        "seed": 42,
        "output_dir": str(output_dir) if output_dir is not None else None,
    }


def _run_dir(root: Path, model_type: str) -> Path:
    run = Path(root) / "output" / MODELS.canonical(model_type) / RUN_NAME
    run.mkdir(parents=True, exist_ok=True)
    return run


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_common(ckpt: Path, run: Path, sft_args: dict[str, Any], tokenizer: Any) -> None:
    _write_json(ckpt / "sft_args.json", sft_args)
    _write_json(run / "sft_args.json", sft_args)
    _write_json(ckpt / "generation_config.json", {
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id, "max_new_tokens": 64,
    })
    _write_json(ckpt / "trainer_state.json", {"global_step": GLOBAL_STEP, "epoch": 1.0, "log_history": []})


def randomize_lora_b(model: Any, seed: int, std: float = 0.05) -> int:
    """Fill every ``lora_B`` weight with N(0, std) from a seeded generator (peft initialises them to 0). Returns the count."""
    gen = torch.Generator().manual_seed(seed)
    count = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora_B." in name:
                param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float32).mul_(std).to(param.dtype))
                count += 1
    return count


def make_lora_checkpoint(model_type: str, root: Path, *, dtype: str = "fp32", seed: int = 0,
                         targets: Any = "DEFAULT", rank: int = 8, alpha: int = 32) -> Path:
    """A LoRA checkpoint folder (peft adapter on ``targets`` with random non-zero ``lora_B``) for a tiny base."""
    from peft import LoraConfig, get_peft_model

    base = tiny_base(model_type, root)
    model, tokenizer = get_model_tokenizer(model_type, DTYPES[dtype], model_id_or_path=base)
    names = resolve_lora_targets(model, model_type, targets)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.05, target_modules=names, bias="none",
                        task_type="CAUSAL_LM")
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, config)
    assert randomize_lora_b(peft_model, seed + 1) > 0
    run = _run_dir(root, model_type)
    ckpt = run / f"checkpoint-{GLOBAL_STEP}"
    if ckpt.exists():
        shutil.rmtree(ckpt)
    peft_model.save_pretrained(str(ckpt), safe_serialization=True)
    _write_json(ckpt / "configuration.json", {"framework": "pytorch", "task": "image-text-to-text", "adapter_cfg": {
        "model_id_or_path": str(base), "sft_type": "lora", "tuner_backend": "peft", "dtype": dtype}})
    _write_common(ckpt, run, sft_args_for(model_type, base, "lora", dtype, names, rank, alpha, run.parent.parent),
                  tokenizer)
    return ckpt


def make_full_checkpoint(model_type: str, root: Path, *, dtype: str = "fp32", seed: int = 0) -> Path:
    """A full-parameter checkpoint folder: the tiny base's weights (slightly perturbed) saved as a model."""
    base = tiny_base(model_type, root)
    model, tokenizer = get_model_tokenizer(model_type, DTYPES[dtype], model_id_or_path=base)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.is_floating_point():
                param.add_(torch.randn(param.shape, generator=gen).mul_(1e-3).to(param.dtype))
    run = _run_dir(root, model_type)
    ckpt = run / f"checkpoint-{GLOBAL_STEP}"
    if ckpt.exists():
        shutil.rmtree(ckpt)
    model.save_pretrained(str(ckpt), safe_serialization=True)
    for name in (*TOKENIZER_FILES, "vlmref_processor.json"):
        if (base / name).is_file():
            shutil.copyfile(base / name, ckpt / name)
    _write_common(ckpt, run, sft_args_for(model_type, base, "full", dtype, None, output_dir=run.parent.parent),
                  tokenizer)
    return ckpt


def image_batch(model_type: str, tokenizer: Any, image_dir: Path, n_images: int = 1, response: bool = True) -> dict[str, Any]:
    """A one-row batch with ``n_images`` generated images, collated for the model: a training row (query + response)
    or, with ``response=False``, a generation prompt."""
    from PIL import Image

    from vlmref.datasets.collate import DataCollator
    from vlmref.templates import get_template

    meta = MODELS.get(model_type)
    image_dir = Path(image_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n_images):
        path = image_dir / f"img{i}.png"
        img = Image.new("RGB", (64 + 16 * i, 48), (200 - 60 * i, 30 + 50 * i, 30))
        for x in range(0, img.width, 8):  # some structure, so patches differ
            for y in range(img.height):
                img.putpixel((x, y), (20, 20, 220))
        img.save(path)
        images.append(str(path))
    template = get_template(meta.template, tokenizer, **meta.media_options)
    example = {"query": "Describe the picture.", "response": "A red square with blue stripes." if response else None,
               "images": images}
    return DataCollator(model_type, tokenizer)([template.encode(example)])
