"""Loading a checkpoint whose weights are partly kept in side folders, with a load report that tells the truth.

Some upstream layouts keep a component outside the main checkpoint: Yi-VL's CLIP tower in ``vit/<name>/``,
IXC-2.5's CLIP in a separate CLIP folder. A family's model class describes those folders as ``SideWeights``; then
``from_pretrained_with_sides`` loads the main checkpoint (telling transformers not to report the keys a side folder
provides as missing), copies the side weights in, zero-initialises the missing keys the family says must be a no-op
when absent (e.g. XComposer's PLoRA / task-adapter ``B`` matrices) and returns a ``LoadReport``::

    >>> report = LoadReport(folder="m", missing_keys=["a.lora_web_B.weight"], zero_initialised=["a.lora_web_B.weight"])
    >>> report.to_dict()["missing_keys"]
    ['a.lora_web_B.weight']

``missing_keys`` lists only keys that were loaded from nowhere (main checkpoint or side folder).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("vlmref.models")

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class SideWeights:
    """One side folder's weights file and how its keys map onto the model's (``model_key(ckpt_key)``; None = skip).
    ``wins``: its weights replace the main checkpoint's copy (Yi-VL); otherwise they fill only what is missing."""

    path: Path
    model_key: Callable[[str], str | None]
    wins: bool = False


@dataclass
class LoadReport:
    """What ``from_pretrained`` loaded from where. ``missing_keys``: parameters loaded from no file (randomly
    initialised unless also in ``zero_initialised``); ``side_loaded``: side file -> model keys loaded from it."""

    folder: str
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    mismatched_keys: list[Any] = field(default_factory=list)
    side_loaded: dict[str, list[str]] = field(default_factory=dict)
    side_ignored: dict[str, list[str]] = field(default_factory=dict)
    zero_initialised: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder, "missing_keys": list(self.missing_keys), "unexpected_keys": list(self.unexpected_keys),
            "mismatched_keys": list(self.mismatched_keys), "error_msgs": [],
            "side_loaded": {k: list(v) for k, v in self.side_loaded.items()},
            "side_ignored": {k: list(v) for k, v in self.side_ignored.items()},
            "zero_initialised": list(self.zero_initialised),
        }


def weights_file(folder: str | os.PathLike) -> Path | None:
    """The single-file weights of a side folder (safetensors preferred), or None."""
    return next((Path(folder) / n for n in WEIGHT_FILES if (Path(folder) / n).is_file()), None)


def read_state_dict(path: Path, keys_only: bool = False) -> Any:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return list(f.keys()) if keys_only else {k: f.get_tensor(k) for k in f.keys()}
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return list(state) if keys_only else state


def checkpoint_keys(folder: str | os.PathLike) -> set[str]:
    """Keys of a model folder's main checkpoint (safetensors/bin, sharded or not), read from headers/indexes."""
    import json

    folder = Path(folder)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            return set(json.loads((folder / index).read_text(encoding="utf-8"))["weight_map"])
    path = weights_file(folder)
    return set(read_state_dict(path, keys_only=True)) if path is not None else set()


@contextmanager
def _ignore_missing(cls: type, keys: Iterable[str]):
    """transformers drops missing keys matching ``cls._keys_to_ignore_on_load_missing`` from its report and
    ``output_loading_info``; add exact patterns for ``keys`` for the duration of one load."""
    keys = sorted(keys)
    if not keys:
        yield
        return
    had = "_keys_to_ignore_on_load_missing" in cls.__dict__
    old = cls.__dict__.get("_keys_to_ignore_on_load_missing")
    cls._keys_to_ignore_on_load_missing = [*(getattr(cls, "_keys_to_ignore_on_load_missing", None) or ()),
                                           *(f"^{re.escape(k)}$" for k in keys)]
    try:
        yield
    finally:
        if had:
            cls._keys_to_ignore_on_load_missing = old
        else:
            del cls._keys_to_ignore_on_load_missing


def from_pretrained_with_sides(cls: type, load: Callable[..., Any], folder: Any, sides: list[SideWeights],
                               *args: Any, zero_missing: tuple[str, ...] = (), output_loading_info: bool = False,
                               **kwargs: Any):
    """``load(folder, *args, **kwargs)`` (transformers' ``from_pretrained``) plus ``sides``; ``zero_missing``:
    regexes of parameter names zero-initialised when no file has them (a missing adapter ``B`` = a no-op).
    Sets ``model.load_report``; returns ``(model, report dict)`` with ``output_loading_info``."""
    import torch

    main = checkpoint_keys(folder) if os.path.isdir(str(folder)) else set()
    provided: dict[str, tuple[Path, str]] = {}
    ignored: dict[str, list[str]] = {}
    for side in sides:
        for key in read_state_dict(side.path, keys_only=True):
            target = side.model_key(key)
            if target is None:
                ignored.setdefault(str(side.path), []).append(key)
            elif side.wins or target not in main:
                provided[target] = (side.path, key)
    with _ignore_missing(cls, provided):
        model, info = load(folder, *args, output_loading_info=True, **kwargs)
    own = model.state_dict()
    missing = set(info.get("missing_keys", ()))
    loaded: dict[str, list[str]] = {}
    by_file: dict[Path, list[tuple[str, str]]] = {}
    for target, (path, key) in provided.items():
        by_file.setdefault(path, []).append((target, key))
    with torch.no_grad():
        for path, pairs in by_file.items():
            state = read_state_dict(path)
            for target, key in sorted(pairs):
                if target not in own:
                    ignored.setdefault(str(path), []).append(key)
                    continue
                value = state[key]
                if tuple(value.shape) != tuple(own[target].shape):
                    raise ValueError(f"{path}: {key} has shape {tuple(value.shape)}, the model's {target} "
                                     f"{tuple(own[target].shape)} (does its config.json match the weights?)")
                own[target].copy_(value.to(own[target].dtype))
                loaded.setdefault(str(path), []).append(target)
    done = {k for keys in loaded.values() for k in keys}
    # a key a side folder was expected to provide but did not is really missing
    missing |= {k for k in provided if k not in done and k in own}
    missing -= done
    zeroed = _zero_missing(model, missing, zero_missing)
    report = LoadReport(folder=str(folder), missing_keys=sorted(missing),
                        unexpected_keys=sorted(info.get("unexpected_keys", ())),
                        mismatched_keys=sorted(info.get("mismatched_keys", ())), side_loaded=loaded,
                        side_ignored={k: sorted(v) for k, v in ignored.items()}, zero_initialised=zeroed)
    model.load_report = report
    return (model, report.to_dict()) if output_loading_info else model


def _zero_missing(model: Any, missing: set[str], patterns: tuple[str, ...]) -> list[str]:
    """Zero the missing parameters whose names match ``patterns``; warn, naming each adapter once."""
    if not patterns or not missing:
        return []
    import torch

    regex = re.compile("|".join(f"(?:{p})" for p in patterns))
    params = dict(model.named_parameters())
    zeroed = sorted(k for k in missing if k in params and regex.search(k))
    with torch.no_grad():
        for key in zeroed:
            params[key].zero_()
    if zeroed:
        names = sorted({re.sub(r"^.*\.", "", k.rsplit(".", 1)[0]) for k in zeroed})
        logger.warning("%s: %d adapter weights missing from the checkpoint (%s) were zero-initialised, so those "
                       "adapters are a no-op: %s", type(model).__name__, len(zeroed), ", ".join(names),
                       ", ".join(zeroed[:4]) + (" ..." if len(zeroed) > 4 else ""))
    return zeroed
