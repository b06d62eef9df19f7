"""``vlmref export --merge_lora true``: fold a LoRA checkpoint into its base model and save a full model folder.

ms-swift 2.2.0 ``merge_lora`` (export.py L92-104, infer.py L25-128), same output and rules::

    merged = merge_lora('output/qwen-vl-chat/v0-20240101-000000/checkpoint-100')
    # -> output/qwen-vl-chat/v0-20240101-000000/checkpoint-100-merged
    model, tokenizer, sft_args = load_from_ckpt(merged)   # a full checkpoint (sft_type='full')

The merged folder (``<ckpt_dir>-merged``, next to the checkpoint) holds the merged model (``save_pretrained``,
safetensors, the training dtype unless ``dtype`` says otherwise), the tokenizer files and processor files of the base
model folder, ``generation_config.json`` (the checkpoint's: the eos used in training), ``configuration.json`` without
``adapter_cfg`` when the base has one, and ``sft_args.json`` with ``sft_type='full'``, ``dtype`` = the export dtype and
``model_id_or_path`` = the merged folder. It is written to a temporary folder next to it and renamed when complete,
so a ``-merged`` folder is never half-written; an existing one is kept (merging skipped, as upstream) unless
``overwrite=True``.

The merge is peft's ``merge_and_unload``: every LoRA update ``B @ A * alpha / r`` is added to its base ``weight``.

Deviation, Yi-VL: the DEFAULT targets ``q_proj/k_proj/v_proj`` also wrap the CLIP vision tower, and Yi-VL loads its
vision tower from the ``vit/<name>`` folder (which wins over the main checkpoint's copy, upstream and in vlmref).
ms-swift copies the base model's ``vit/`` folder into the merged folder unchanged, so reloading the merged model
silently drops the vision-tower part of the adapter; vlmref writes the merged vision tower into ``vit/<name>``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..noise import no_deepspeed_import
from ..utils import chmod_per_umask
from .ckpt import (
    ADAPTER_SFT_TYPES,
    GENERATION_CONFIG,
    SFT_ARGS,
    CheckpointError,
    checkpoint_folder,
    checkpoint_kind,
    dtype_name,
    load_from_ckpt,
    read_sft_args,
    resolve_dtype,
)

logger = logging.getLogger(__name__)

# files of the base model folder the merged folder needs besides the weights (tokenizer, processors, extras)
BASE_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "added_tokens.json", "vocab.json", "merges.txt", "qwen.tiktoken", "chat_template.json",
              "chat_template.jinja", "preprocessor_config.json", "processor_config.json", "vlmref_processor.json",
              "SimSun.ttf")
MERGE_DEVICE_MAPS = ("auto", "cpu")
QUANTIZED_MARKERS = ("int4", "int8", "awq", "aqlm", "gptq")


class MergeError(CheckpointError):
    """The checkpoint cannot be merged (not an adapter checkpoint, quantized model type, ...)."""


def merged_dir_for(ckpt_dir: str | os.PathLike) -> Path:
    """The sibling folder the merged model goes to: ``<ckpt_dir>-merged``."""
    folder = Path(ckpt_dir)
    return folder.parent / f"{folder.name}-merged"


def merge_lora(
    ckpt_dir: str | os.PathLike | None,
    *,
    merge_device_map: str | dict[str, Any] = "auto",
    dtype: Any = "AUTO",
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    tokenizer_id_or_path: str | os.PathLike | None = None,
) -> Path:
    """Merge the LoRA checkpoint ``ckpt_dir`` into its base model; returns the merged folder (see module docstring).

    ``merge_device_map``: ``'auto'`` (upstream default: spread over the GPUs, else CPU) or ``'cpu'`` (or a
    device_map dict). ``dtype``: ``'AUTO'`` = the training dtype (``sft_args.json``), or ``bf16``/``fp16``/``fp32``.
    Refuses (``MergeError``/``CheckpointError``, naming the folder) a missing ``ckpt_dir``, a folder without
    ``sft_args.json``, and a full checkpoint (nothing to merge). ``tokenizer_id_or_path``: the tokenizer's folder
    when the base model has none (default: ``sft_args.json``'s); its files are copied into the merged folder.
    """
    say = log or logger.info
    folder = checkpoint_folder(ckpt_dir).resolve()
    args = read_sft_args(folder)
    if args["sft_type"] not in ADAPTER_SFT_TYPES:
        raise MergeError(
            f"checkpoint {folder} is a full checkpoint (sft_type={args['sft_type']!r}): there is no LoRA to merge; "
            f"use it directly (--ckpt_dir {folder})"
        )
    if any(m in args["model_type"] for m in QUANTIZED_MARKERS):
        raise MergeError(f"{args['model_type']} is a quantized model and does not support merge-lora")
    checkpoint_kind(folder, args)  # the adapter files are there
    out = merged_dir_for(folder)
    say(f"merged_lora_path: {out}")
    if out.exists() and not overwrite:
        say(f"The merged folder {out} already exists: skipping the merge (pass --overwrite to redo it)")
        return out
    export_dtype = resolve_dtype(dtype) or resolve_dtype(args.get("dtype"))
    device_map = merge_device_map
    if isinstance(device_map, str) and device_map not in MERGE_DEVICE_MAPS:
        raise ValueError(f"merge_device_map must be one of {MERGE_DEVICE_MAPS} or a dict, got {device_map!r}")
    say(f"merge_device_map: {device_map}; dtype: {dtype_name(export_dtype) if export_dtype else 'config'}")

    model, tokenizer, _ = load_from_ckpt(folder, export_dtype, {"device_map": device_map},
                                         tokenizer_id_or_path=tokenizer_id_or_path)
    base_dir = Path(tokenizer.model_dir)
    say("Merge LoRA...")
    merged = model.merge_and_unload(safe_merge=True)  # safe_merge: refuse non-finite merged weights
    merged.eval()
    say("Saving merged weights...")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        with no_deepspeed_import():  # accelerate would import it (and log "Setting accelerator to CPU")
            merged.save_pretrained(str(tmp), safe_serialization=True)
        _copy_base_files(base_dir, folder, tmp)
        _copy_tokenizer_files(Path(getattr(tokenizer, "tokenizer_dir", base_dir)), base_dir, tmp)
        from ..models.arch import get_arch

        side_weights = get_arch(args["model_type"]).export_side_weights
        if side_weights is not None:  # weights the family keeps outside the model folder's main files (Yi-VL's vit/)
            side_weights(merged, base_dir, tmp)
        new_args = dict(args)
        new_args.update(sft_type="full", dtype=dtype_name(merged.dtype), model_id_or_path=str(out),
                        merged_from=str(folder), base_model_id_or_path=args.get("model_id_or_path"))
        (tmp / SFT_ARGS).write_text(json.dumps(new_args, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        chmod_per_umask(tmp)  # mkdtemp makes 0700 and save_pretrained 0600: the folder should look like any other
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"Successfully merged LoRA and saved in {out}")
    return out


def _copy_base_files(base_dir: Path, ckpt: Path, target: Path) -> None:
    """Tokenizer/processor files from the base folder; generation_config.json from the checkpoint (else the base);
    configuration.json minus ``adapter_cfg`` (checkpoint first, as upstream)."""
    for name in BASE_FILES:
        if (base_dir / name).is_file():
            shutil.copyfile(base_dir / name, target / name)
    for source in (ckpt, base_dir):
        if (source / GENERATION_CONFIG).is_file():
            shutil.copyfile(source / GENERATION_CONFIG, target / GENERATION_CONFIG)
            break
    for source in (ckpt, base_dir):
        path = source / "configuration.json"
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            data.pop("adapter_cfg", None)
            if data:  # vlmref sft writes {"adapter_cfg": ...} alone when the base has no configuration.json
                (target / "configuration.json").write_text(json.dumps(data, indent=4, ensure_ascii=False),
                                                           encoding="utf-8")
            break


def _copy_tokenizer_files(tokenizer_dir: Path, base_dir: Path, target: Path) -> None:
    """A tokenizer loaded from its own folder (``tokenizer_id_or_path``): its files go into the merged folder."""
    from ..models.tiny import TOKENIZER_FILES

    if tokenizer_dir.resolve() == base_dir.resolve():
        return
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copyfile(tokenizer_dir / name, target / name)


def _replace_folder(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and deleted after the rename."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
