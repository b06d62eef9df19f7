"""Checkpoint folders written by ``vlmref sft`` (and ``vlmref export --merge_lora true``): read and load them.

A checkpoint folder (``<output_dir>/<model_type>/v<N>-<time>/checkpoint-<step>``) holds ``sft_args.json`` and either
a peft LoRA adapter (``adapter_config.json`` + ``adapter_model.safetensors``; the base model is the folder named by
``sft_args.json``'s ``model_id_or_path``) or a full model (``config.json`` + safetensors + tokenizer files)::

    model, tokenizer, sft_args = load_from_ckpt('output/qwen-vl-chat/v0-20240101-000000/checkpoint-100')

As ``swift infer --ckpt_dir`` (ms-swift 2.2.0): the model type and base model come from ``sft_args.json``; the dtype
is the training dtype unless one is given; a LoRA adapter is attached with ``peft.PeftModel.from_pretrained`` and its
weights cast to the model's dtype (``model.to(model.dtype)`` upstream); a full checkpoint (``sft_type='full'``, e.g. a
``-merged`` folder) is loaded as the model itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import TokenizerNotFoundError, VlmrefError
from ..noise import quiet_known_warnings

SFT_ARGS = "sft_args.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
GENERATION_CONFIG = "generation_config.json"
ADAPTER_SFT_TYPES = ("lora", "adalora", "longlora", "llamapro")  # ms-swift's merge-lora set; vlmref trains lora
DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class CheckpointError(VlmrefError, ValueError):
    """A checkpoint folder cannot be used; the message names the folder and what is wrong or missing."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint folder, or a file it needs (``sft_args.json``, the adapter, the base model), does not exist."""


def checkpoint_folder(ckpt_dir: str | os.PathLike | None) -> Path:
    if ckpt_dir is None or str(ckpt_dir) == "":
        raise CheckpointError("ckpt_dir is not specified (pass --ckpt_dir <output>/<model_type>/vx-xxx/checkpoint-xxx)")
    folder = Path(ckpt_dir)
    if not folder.exists():
        raise CheckpointNotFoundError(f"checkpoint folder {folder} does not exist")
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {folder} is not a folder (expected a vx-xxx/checkpoint-xxx folder)")
    return folder


def read_sft_args(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's ``sft_args.json`` as a dict, checked for the fields loading needs (``model_type``,
    ``sft_type``; ``model_id_or_path`` for adapters)."""
    from ..models.model_types import MODELS

    folder = checkpoint_folder(ckpt_dir)
    path = folder / SFT_ARGS
    if not path.is_file():
        inner = sorted(p.name for p in folder.glob("checkpoint-*") if p.is_dir())
        hint = f"; this looks like a run folder: pass one of its checkpoints ({', '.join(inner)})" if inner else ""
        raise CheckpointNotFoundError(
            f"checkpoint {folder}: no {SFT_ARGS} (written by `vlmref sft` into every checkpoint-xxx folder; it names "
            f"the model type, base model and dtype){hint}"
        )
    try:
        args = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {folder}: {SFT_ARGS} is not valid JSON ({e})") from e
    if not isinstance(args, dict):
        raise CheckpointError(f"checkpoint {folder}: {SFT_ARGS} must hold a JSON object, found {type(args).__name__}")
    for key in ("model_type", "sft_type"):
        if not args.get(key):
            raise CheckpointError(f"checkpoint {folder}: {SFT_ARGS} has no {key!r}")
    if args["model_type"] not in MODELS:
        raise CheckpointError(
            f"checkpoint {folder}: {SFT_ARGS} model_type {args['model_type']!r} is not a known model type "
            f"({', '.join(MODELS.names())})"
        )
    if args["sft_type"] in ADAPTER_SFT_TYPES and not args.get("model_id_or_path"):
        raise CheckpointError(
            f"checkpoint {folder}: {SFT_ARGS} has no 'model_id_or_path' (the base model the adapter was trained on)"
        )
    return args


def is_adapter_checkpoint(ckpt_dir: str | os.PathLike) -> bool:
    """True when the folder holds a peft adapter (``adapter_config.json``), False for a full model folder."""
    return (Path(ckpt_dir) / ADAPTER_CONFIG).is_file()


def resolve_dtype(dtype: Any):
    """``'bf16'|'fp16'|'fp32'``, a torch dtype name, or a ``torch.dtype`` -> ``torch.dtype``; ``None``/``'AUTO'`` ->
    ``None`` (the model config's dtype)."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype)
    if name.upper() == "AUTO":
        return None
    value = getattr(torch, DTYPE_NAMES.get(name, name), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; expected one of AUTO, bf16, fp16, fp32")
    return value


def dtype_name(dtype: Any) -> str:
    """``torch.bfloat16`` -> ``'bf16'`` (the sft_args.json spelling)."""
    import torch

    names = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
    return names.get(resolve_dtype(dtype), str(dtype))


def checkpoint_kind(ckpt_dir: str | os.PathLike, sft_args: dict[str, Any] | None = None) -> str:
    """``'adapter'`` or ``'full'``, checking that ``sft_args.json`` and the folder's files agree."""
    folder = checkpoint_folder(ckpt_dir)
    args = read_sft_args(folder) if sft_args is None else sft_args
    sft_type = args["sft_type"]
    adapter = is_adapter_checkpoint(folder)
    if sft_type in ADAPTER_SFT_TYPES:
        if not adapter:
            raise CheckpointNotFoundError(
                f"checkpoint {folder}: {SFT_ARGS} says sft_type={sft_type!r} but there is no {ADAPTER_CONFIG}"
            )
        if not any((folder / name).is_file() for name in ADAPTER_WEIGHTS):
            raise CheckpointNotFoundError(
                f"checkpoint {folder}: {ADAPTER_CONFIG} is there but the adapter weights ({' or '.join(ADAPTER_WEIGHTS)}) "
                "are missing"
            )
        return "adapter"
    if sft_type != "full":
        raise CheckpointError(f"checkpoint {folder}: sft_type {sft_type!r} is not supported (lora or full)")
    if adapter:
        raise CheckpointError(f"checkpoint {folder}: {SFT_ARGS} says sft_type='full' but the folder holds {ADAPTER_CONFIG}")
    if not (folder / "config.json").is_file():
        raise CheckpointNotFoundError(
            f"checkpoint {folder}: a full checkpoint (sft_type='full') needs the model's config.json and weights; "
            "config.json is missing"
        )
    return "full"


def load_from_ckpt(ckpt_dir: str | os.PathLike, torch_dtype: Any = None, model_kwargs: dict[str, Any] | None = None,
                   tokenizer_id_or_path: str | os.PathLike | None = None):
    """Load a checkpoint folder -> ``(model, tokenizer, sft_args)``.

    ``torch_dtype``: ``None`` = the training dtype from ``sft_args.json`` (as ``swift infer`` with ``--dtype AUTO``);
    a ``torch.dtype`` or ``'bf16'|'fp16'|'fp32'`` overrides it. ``model_kwargs`` go to ``from_pretrained``
    (e.g. ``{'device_map': 'auto'}``). LoRA: the base model (``sft_args['model_id_or_path']``) wrapped in a
    ``peft.PeftModel`` in eval mode, adapter weights in the model's dtype; full: the folder's own model. The
    checkpoint's ``generation_config.json`` (the eos/pad/bos used in training) becomes ``model.generation_config``.
    ``tokenizer_id_or_path``: the tokenizer's folder when the model has none (default for LoRA: ``sft_args.json``'s).
    """
    from ..models.loader import get_model_tokenizer

    folder = checkpoint_folder(ckpt_dir)
    args = read_sft_args(folder)
    kind = checkpoint_kind(folder, args)
    dtype = resolve_dtype(torch_dtype if torch_dtype is not None else args.get("dtype"))
    source = args["model_id_or_path"] if kind == "adapter" else folder
    if tokenizer_id_or_path is None and kind == "adapter":
        tokenizer_id_or_path = args.get("tokenizer_id_or_path")
    try:
        model, tokenizer = get_model_tokenizer(args["model_type"], dtype, dict(model_kwargs or {}),
                                               model_id_or_path=source, tokenizer_id_or_path=tokenizer_id_or_path)
    except TokenizerNotFoundError:
        raise
    except FileNotFoundError as e:
        what = (f"its base model {source!r} ({SFT_ARGS} model_id_or_path) cannot be loaded" if kind == "adapter"
                else "the full model in it cannot be loaded")
        raise CheckpointNotFoundError(f"checkpoint {folder}: {what}: {e}") from e
    if kind == "adapter":
        model = _attach_adapter(model, folder)
    _load_generation_config(model, folder)
    model.eval()
    return model, tokenizer, args


def _attach_adapter(base: Any, folder: Path):
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    dtype = base.dtype
    with quiet_known_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing
        model = PeftModel.from_pretrained(base, str(folder), is_trainable=False)
    for module in model.modules():  # adapter weights in the model's dtype, found structurally (not by "lora_" names)
        if isinstance(module, BaseTunerLayer):
            for name in module.adapter_layer_names:
                getattr(module, name).to(dtype)
    return model


def _load_generation_config(model: Any, folder: Path) -> None:
    if not (folder / GENERATION_CONFIG).is_file():
        return
    from transformers import GenerationConfig

    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    target.generation_config = GenerationConfig.from_pretrained(str(folder))
