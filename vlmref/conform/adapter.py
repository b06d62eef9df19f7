"""The encoder under test: ``encode(model_type, example, **options) -> {"input_ids", "labels", ...}``.

Named as ``module:function`` (``--adapter``). ``example`` is vlmref's example dict (``query``, ``response`` (None: a
generation prompt), ``history`` as ``[[query, response], ...]``, ``system`` (absent: the template's default, ``""``:
none) and ``images`` as absolute file paths); ``options`` is empty, or ``max_length`` and ``truncation_strategy``
(``delete`` | ``truncation_left``) for the truncation cases. The result needs ``input_ids`` and ``labels`` (-100 where
no loss); ``image_spans`` (``[[start, length], ...]``), ``token_type_ids`` and ``im_mask`` are compared when given.
Raising an exception is a result too: the case expects an error when vlmref's reference raises one.

The callable (or the object it is an attribute of, when ``module:object`` has an ``encode`` method) may declare:

* ``model_types``: the model types it covers (vlmref's names or ms-swift 2.2.0's aliases); absent: all;
* ``image_placement``: ``"expanded"`` (one id per image position, as the model consumes them), ``"placeholder"`` (one
  id per image that the model expands), or ``"any"`` (absent); the comparison collapses each image run either way;
* ``image_token_ids``: extra ids that mark image positions (besides the ids vlmref's reference uses there);
* ``name`` and ``version``: shown in the report;
* ``supports_truncation``: False skips the cases with ``max_length`` (reported as skipped).

>>> def encode(model_type, example, **options):
...     return {"input_ids": [1, 2], "labels": [-100, 2]}
>>> encode.model_types = ("qwen-vl-chat",)
>>> adapter_from(encode, "example:encode").covers("qwen-vl-chat"), adapter_from(encode, "x").covers("yi-vl-6b-chat")
(True, False)
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VlmrefError

PLACEMENTS = ("expanded", "placeholder", "any")


class AdapterError(VlmrefError, ValueError):
    """An adapter that cannot be loaded or declares something invalid."""


@dataclass
class Adapter:
    target: str
    encode: Callable[..., dict[str, Any]]
    model_types: tuple[str, ...] | None = None  # None: every model type
    image_placement: str = "any"
    image_token_ids: tuple[int, ...] = ()
    name: str = ""
    version: str = ""
    supports_truncation: bool = True
    closer: Callable[[], None] | None = field(default=None, repr=False)

    def covers(self, model_type: str) -> bool:
        from ..models.model_types import MODELS

        if self.model_types is None:
            return True
        return MODELS.canonical(model_type) in {MODELS.canonical(m) for m in self.model_types if m in MODELS}

    def close(self) -> None:
        if self.closer is not None:
            self.closer()


def _declared(obj: Any, target: str) -> dict[str, Any]:
    model_types = getattr(obj, "model_types", None)
    if model_types is not None:
        if isinstance(model_types, str) or not isinstance(model_types, Iterable):
            raise AdapterError(f"{target}: model_types must be a list of model type names, got {model_types!r}")
        model_types = tuple(model_types)
    placement = getattr(obj, "image_placement", None) or "any"
    if placement not in PLACEMENTS:
        raise AdapterError(f"{target}: image_placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    ids = getattr(obj, "image_token_ids", None) or ()
    return {"model_types": model_types, "image_placement": placement,
            "image_token_ids": tuple(int(i) for i in ids), "name": str(getattr(obj, "name", "") or target),
            "version": str(getattr(obj, "version", "") or ""),
            "supports_truncation": bool(getattr(obj, "supports_truncation", True))}


def adapter_from(obj: Any, target: str) -> Adapter:
    """An ``Adapter`` for a loaded callable, or an object with an ``encode`` method."""
    encode = getattr(obj, "encode", obj)
    if not callable(encode):
        raise AdapterError(f"{target}: not callable (expected encode(model_type, example, **options))")
    return Adapter(target, encode, **_declared(obj, target))


def load_adapter(target: str, path: Iterable[str] = ()) -> Adapter:
    """Import ``module:function`` (``path``: folders put first on ``sys.path``) in this process."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise AdapterError(f"--adapter: expected module:function, got {target!r}")
    for folder in reversed(list(path)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as err:
        raise AdapterError(f"--adapter {target}: cannot import {module!r} ({err})") from None
    for part in name.split("."):
        if not hasattr(obj, part):
            raise AdapterError(f"--adapter {target}: {module!r} has no {part!r}")
        obj = getattr(obj, part)
    return adapter_from(obj, target)


class _Worker:
    """``worker.py`` in another interpreter, one JSON line per request."""

    def __init__(self, python: str, target: str, path: Iterable[str]) -> None:
        import os

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([*path, env.get("PYTHONPATH", "")]).strip(os.pathsep)
        worker = Path(__file__).with_name("worker.py")
        try:
            self.proc = subprocess.Popen([python, str(worker), target], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, env=env, bufsize=1)
        except OSError as err:
            raise AdapterError(f"--adapter_python {python}: cannot start it ({err})") from None
        first = self._read()
        if "error" in first:
            self.close()
            raise AdapterError(first["error"])
        self.describe = first.get("describe", {})

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise AdapterError(f"the adapter worker ended (exit {code}) without an answer")
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            self.proc.kill()
            raise AdapterError(f"the adapter worker wrote a line that is not the protocol's JSON: {line[:200]!r}"
                               ) from None

    def encode(self, model_type: str, example: dict[str, Any], **options: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"model_type": model_type, "example": example, "options": options}) + "\n")
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["ok"]

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def worker_adapter(python: str, target: str, path: Iterable[str] = ()) -> Adapter:
    """The adapter ``target`` run by ``python`` (another venv) through ``worker.py``."""
    worker = _Worker(python, target, list(path))

    class Declared:
        pass

    declared = Declared()
    for key, value in worker.describe.items():
        if value is not None:
            setattr(declared, key, value)
    adapter = Adapter(target, worker.encode, **_declared(declared, target))
    adapter.closer = worker.close
    return adapter
