"""``get_model_tokenizer``: the seeds' loading API. Models and tokenizers load from a local folder or a hub snapshot,
never with remote code.

>>> model, tok = get_model_tokenizer('qwen-vl-chat', torch.bfloat16, {'device_map': 'auto'},
...                                  model_id_or_path='/models/Qwen-VL-Chat')  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import TokenizerNotFoundError
from ..tokenizers import load_tokenizer, shared_tokenizers_dir
from .model_types import MODELS, ModelMeta
from .side_weights import LoadReport, logger

_TOKENIZER_FILES = {
    "sentencepiece": ("tokenizer.model",),
    "tokenizer_json": ("tokenizer.json",),
    "qwen": ("qwen.tiktoken",),
    "qwen-vl": ("qwen.tiktoken",),
}


def _tokenizer_kind(meta: ModelMeta, folder: Path, given: bool = False) -> str:
    """The registry's loader kind; a folder that only has the other common format is accepted too."""
    kind = meta.tokenizer.kind
    if any((folder / f).is_file() for f in _TOKENIZER_FILES[kind]):
        return kind
    for alt in ("tokenizer_json", "sentencepiece"):
        if alt != kind and kind in ("tokenizer_json", "sentencepiece") and (folder / _TOKENIZER_FILES[alt][0]).is_file():
            return alt
    expected = " or ".join(_TOKENIZER_FILES[kind])
    source = meta.tokenizer.source
    if given:
        raise TokenizerNotFoundError(f"{meta.model_type}: tokenizer_id_or_path {str(folder)!r} has no {expected}")
    if source is not None:
        raise TokenizerNotFoundError(
            f"{meta.model_type}: no {expected} in {folder}; this model's tokenizer is not part of its checkpoint but "
            f"comes from {source.hf_id} (ModelScope {source.ms_id}, as ms-swift loads it): pass "
            f"tokenizer_id_or_path=DIR (CLI: --tokenizer_id_or_path DIR) with a download of it")
    raise TokenizerNotFoundError(f"{meta.model_type}: no {expected} in {folder}; pass tokenizer_id_or_path=DIR "
                                 "(CLI: --tokenizer_id_or_path DIR) with the model's tokenizer files")


def resolve_tokenizer_dir(model_type: str, tokenizer_id_or_path: str | os.PathLike) -> Path:
    """A local folder for ``tokenizer_id_or_path``: the folder itself, or a hub snapshot of that id."""
    path = Path(tokenizer_id_or_path)
    if path.is_dir():
        return path
    if path.is_absolute() or str(tokenizer_id_or_path).startswith(".") or path.exists():
        raise TokenizerNotFoundError(f"{model_type}: tokenizer_id_or_path {str(tokenizer_id_or_path)!r} is not a "
                                     "local folder")
    use_hf = os.environ.get("USE_HF", "").lower() in ("1", "true", "yes")
    return Path(_snapshot_download(str(tokenizer_id_or_path), use_hf, model_type))


def get_model_tokenizer(
    model_type: str,
    torch_dtype: Any = None,
    model_kwargs: dict[str, Any] | None = None,
    load_model: bool = True,
    *,
    model_id_or_path: str | os.PathLike | None = None,
    tokenizer_id_or_path: str | os.PathLike | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """Return ``(model, tokenizer)`` for ``model_type`` (a seed name or an ms-swift 2.2.0 alias).

    ``model_id_or_path``: a local folder (config.json, safetensors shards, tokenizer files) or a hub id; ``None``
    means the registry's ModelScope id (HF id with ``USE_HF=1``), downloaded once into the hub cache. The model is
    vlmref's own implementation of the architecture: no remote code runs, whatever the folder's ``auto_map`` says.
    ``model_kwargs`` go to ``from_pretrained`` (e.g. ``{'device_map': 'auto'}``, ``{'low_cpu_mem_usage': True}``).
    With ``load_model=False`` the model is ``None``. The tokenizer gets the special tokens the model adds (e.g.
    llava-hf's ``<image>``), ms-swift's eos overrides, and pad := eos when it has none.
    ``tokenizer_id_or_path``: a folder (or hub id) with the tokenizer when the model folder has none, e.g.
    CogVLM's, which lives in vicuna-7b-v1.5 (the registry's ``TokenizerSpec.source``).
    """
    meta = MODELS.get(model_type)
    folder = resolve_model_dir(meta.model_type, model_id_or_path)
    given = tokenizer_id_or_path is not None
    tok_folder = resolve_tokenizer_dir(meta.model_type, tokenizer_id_or_path) if given else folder
    kind = _tokenizer_kind(meta, tok_folder, given=given)
    policy = meta.tokenizer.prefix_policy if kind == "sentencepiece" else None
    tokenizer = load_tokenizer(kind, tok_folder, special=meta.tokenizer.special(), prefix_policy=policy)
    tokenizer.model_type = meta.model_type
    tokenizer.model_dir = str(folder)
    tokenizer.tokenizer_dir = str(tok_folder)
    if not load_model:
        return None, tokenizer
    return load_pretrained_model(meta.model_type, folder, torch_dtype=torch_dtype, **(model_kwargs or {})), tokenizer


def load_pretrained_model(model_type: str, folder: str | os.PathLike, torch_dtype: Any = None, **model_kwargs: Any):
    """vlmref's model class for ``model_type`` with the weights in ``folder`` (safetensors or .bin, sharded or not)."""
    import torch

    from .arch import get_arch

    spec = get_arch(model_type)
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{model_type}: no config.json in {folder}")
    config = spec.config_class.from_pretrained(str(folder))
    if isinstance(torch_dtype, str) and torch_dtype not in ("auto", "AUTO"):
        torch_dtype = getattr(torch, torch_dtype)
    if torch_dtype in (None, "auto", "AUTO"):
        torch_dtype = _config_dtype(config)
    model_kwargs.pop("trust_remote_code", None)  # never: vlmref implements the architecture itself
    if spec.key_mapping:
        model_kwargs.setdefault("key_mapping", dict(spec.key_mapping))
    model_kwargs.pop("output_loading_info", None)  # the report is model.load_report
    model, info = spec.model_class.from_pretrained(str(folder), config=config, dtype=torch_dtype,
                                                   output_loading_info=True, **model_kwargs)
    if getattr(model, "load_report", None) is None:
        model.load_report = LoadReport(folder=str(folder), missing_keys=sorted(info.get("missing_keys", ())),
                                       unexpected_keys=sorted(info.get("unexpected_keys", ())),
                                       mismatched_keys=sorted(info.get("mismatched_keys", ())))
    _log_load_report(model_type, model.load_report)
    if spec.after_load is not None:
        spec.after_load(model, folder)
    model.model_type = model_type
    model.model_dir = str(folder)
    model.eval()
    return model


def _log_load_report(model_type: str, report: LoadReport) -> None:
    really = [k for k in report.missing_keys if k not in set(report.zero_initialised)]
    if really:
        logger.warning("%s: %d weights are in no file of %s and were randomly initialised: %s", model_type,
                       len(really), report.folder, ", ".join(really[:8]) + (" ..." if len(really) > 8 else ""))
    for path, keys in report.side_loaded.items():
        logger.info("%s: %d weights loaded from %s", model_type, len(keys), path)


def _config_dtype(config: Any):
    import torch

    value = getattr(config, "torch_dtype", None) or getattr(config, "dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) else torch.float32


def resolve_model_dir(model_type: str, model_id_or_path: str | os.PathLike | None) -> Path:
    """A local folder for the model: the given folder, or a hub snapshot (ModelScope, or HF with ``USE_HF=1``)."""
    meta = MODELS.get(model_type)
    if model_id_or_path is not None and Path(model_id_or_path).is_dir():
        return Path(model_id_or_path)
    if model_id_or_path is not None and (os.path.isabs(str(model_id_or_path)) or str(model_id_or_path).startswith(".")):
        raise FileNotFoundError(f"{meta.model_type}: model_id_or_path {str(model_id_or_path)!r} is not a local folder")
    use_hf = os.environ.get("USE_HF", "").lower() in ("1", "true", "yes")
    model_id = str(model_id_or_path) if model_id_or_path is not None else (meta.hf_model_id if use_hf else meta.ms_model_id)
    return Path(_snapshot_download(model_id, use_hf, meta.model_type))


def _snapshot_download(model_id: str, use_hf: bool, model_type: str) -> str:
    hub = "HuggingFace Hub" if use_hf else "ModelScope"
    try:
        if use_hf:
            from huggingface_hub import snapshot_download
        else:
            from modelscope import snapshot_download
    except ImportError as e:
        raise ImportError(
            f"{model_type}: downloading {model_id!r} from the {hub} needs "
            f"{'huggingface_hub' if use_hf else 'modelscope (pip install modelscope)'}; or pass model_id_or_path=DIR "
            f"(a local folder with the checkpoint){'' if use_hf else ', or set USE_HF=1 to use the HF Hub'}"
        ) from e
    try:
        return snapshot_download(model_id)
    except Exception as e:  # network / auth / missing repo: say what was tried and how to work offline
        raise OSError(
            f"{model_type}: could not download {model_id!r} from the {hub} ({type(e).__name__}: {e}). Offline? Pass "
            "model_id_or_path=DIR with a local copy of the checkpoint (config.json, *.safetensors, tokenizer files)"
        ) from e


def shared_tokenizer_folder(model_type: str) -> Path | None:
    """The folder of ``../shared/tokenizers`` (or $VLMREF_TOKENIZERS_DIR) holding this model's tokenizer, if any."""
    root = shared_tokenizers_dir()
    if root is None:
        return None
    folder = root / MODELS.get(model_type).tokenizer.family
    return folder if folder.is_dir() else None
