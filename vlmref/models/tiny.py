"""``vlmref create-tiny``: a tiny random-weight checkpoint that loads like the real one.

::

    vlmref create-tiny --model_type qwen-vl-chat --out /tmp/tiny-qwen-vl
    model, tokenizer = get_model_tokenizer('qwen-vl-chat', model_id_or_path='/tmp/tiny-qwen-vl')

The folder holds ``config.json`` (the family's upstream field names, tiny widths/depths, the real vocabulary and image
geometry so the templates' image token counts hold), ``model.safetensors``, ``generation_config.json``, the tokenizer
files (the family's real ones, from ``--tokenizer_dir`` or ``../shared/tokenizers``; without them a byte-level stand-in
with the real special-token ids, see ``fallback_tokenizer``) and ``vlmref_processor.json``
(the image preprocessing the collator applies). Written to a temporary folder first, then renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any

from ..noise import no_deepspeed_import
from ..utils import chmod_per_umask
from .model_types import MODELS

TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "qwen.tiktoken")


def find_tokenizer_dir(model_type: str, tokenizer_dir: str | os.PathLike | None = None) -> Path | None:
    """The given folder (which must exist), else ../shared/tokenizers' family folder, else None (use a stand-in)."""
    from .loader import shared_tokenizer_folder

    if tokenizer_dir is None:
        return shared_tokenizer_folder(model_type)
    folder = Path(tokenizer_dir)
    if not folder.is_dir():
        family = MODELS.get(model_type).tokenizer.family
        raise FileNotFoundError(
            f"{model_type}: --tokenizer_dir {str(folder)!r} is not a folder; pass a folder with the {family} tokenizer "
            f"files (e.g. a download of {MODELS.get(model_type).hf_model_id})"
        )
    return folder


def create_tiny_checkpoint(
    model_type: str,
    out_dir: str | os.PathLike,
    *,
    tokenizer_dir: str | os.PathLike | None = None,
    seed: int = 0,
    overwrite: bool = False,
    **config_overrides: Any,
) -> Path:
    """Write a tiny random checkpoint for ``model_type`` to ``out_dir`` and return its path."""
    import torch

    from .arch import get_arch
    from .loader import get_model_tokenizer

    meta = MODELS.get(model_type)
    spec = get_arch(model_type)
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    source = find_tokenizer_dir(model_type, tokenizer_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        if source is not None:
            copied = [name for name in TOKENIZER_FILES if (source / name).is_file()]
            for name in copied:
                shutil.copyfile(source / name, tmp / name)
        else:  # no real tokenizer files: byte-level stand-in with the real special-token ids
            from .fallback_tokenizer import write_fallback_tokenizer

            copied = write_fallback_tokenizer(meta.model_type, tmp)
            print(f"note: no {meta.tokenizer.family} tokenizer files found; {out} gets a byte-level stand-in tokenizer "
                  "(real special-token ids). Pass --tokenizer_dir for the real one.")
        _, tokenizer = get_model_tokenizer(meta.model_type, load_model=False, model_id_or_path=tmp)
        config_dict = spec.config_dict(tiny=True, **config_overrides)
        if spec.adapt_to_tokenizer is not None:
            config_dict = spec.adapt_to_tokenizer(config_dict, tokenizer)
        config = spec.config_class(**config_dict)
        torch.manual_seed(seed)
        model = spec.model_class(config)
        model.eval()
        with no_deepspeed_import():  # accelerate would import it (and log "Setting accelerator to CPU")
            model.save_pretrained(str(tmp), safe_serialization=True)
        _write_json(tmp / "generation_config.json", {
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id, "max_new_tokens": 64,
        })
        _write_json(tmp / "vlmref_processor.json", _processor_description(meta.model_type))
        _write_json(tmp / "vlmref_tiny.json", {
            "model_type": meta.model_type, "seed": seed, "tokenizer_files": copied,
            "tokenizer_source": str(source) if source is not None else "vlmref.models.fallback_tokenizer (stand-in)",
            "generator": "vlmref create-tiny",
        })
        chmod_per_umask(tmp)  # mkdtemp makes 0700 and save_pretrained 0600: like any folder the user makes
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _processor_description(model_type: str) -> dict[str, Any]:
    from ..datasets.processors import get_image_processor

    processor = get_image_processor(model_type)
    plain = (int, float, str, list, tuple, type(None))
    settings = [vars(cls) for cls in reversed(type(processor).__mro__)] + [vars(processor)]  # class (size), instance
    fields = {k: v.name if isinstance(v, Enum) else v for values in settings for k, v in values.items()
              if not k.startswith("_") and isinstance(v, plain)}
    return {"processor_class": type(processor).__name__, "module": type(processor).__module__, **fields}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=list) + "\n", encoding="utf-8")
