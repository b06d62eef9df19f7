"""Build a scenario's model straight on its device, fast: parameters on the meta device, then empty storage on the
target device(s), then a cheap in-place init; no host-RAM copy of the weights and no per-module default init.

1. ``build_meta``: the model class of the scenario's architecture is constructed (as ``memory.setup.build_model``
   does, in the scenario's dtype) while every *parameter* registered goes to the meta device; buffers and any other
   tensor are computed on the CPU as usual, so their values (rotary ``inv_freq``, CLIP ``position_ids``) are right;
2. ``materialize``: every parameter gets empty storage on its device (``torch.empty_like(..., device=...)``, what
   ``Module.to_empty`` does), every buffer a copy of its CPU value there; tensors shared between modules (tied
   weights) stay shared;
3. ``fast_init_``: floating parameters ``normal_(0, 0.02)`` in place, 1-D ``*bias`` zeros, 1-D ``*weight`` (norms)
   ones; memory and speed do not depend on the values;
4. ``memory.setup.prepare``: LoRA / gradient checkpointing / ``requires_grad`` as ``vlmref sft`` (or infer's eval).

>>> from vlmref.memory.scenario import MemoryScenario
>>> model = build_fast(MemoryScenario("qwen-vl-chat", "infer"), "cpu", tiny=True)
>>> {p.device.type for p in model.parameters()}, all(bool(p.isfinite().all()) for p in model.parameters())
({'cpu'}, True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

INIT_STD = 0.02


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """While active, a parameter registered on any module is replaced by a meta copy (same class, shape, dtype,
    ``requires_grad``); the CPU storage it was made with is dropped at once (``torch.empty`` never touches it)."""
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = type(param)(param.detach().to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


def build_meta(scenario: Any, tiny: bool = False, **config_overrides: Any) -> nn.Module:
    """The scenario's (unprepared) model: parameters on meta, buffers computed on the CPU."""
    from ..memory.setup import DTYPES, default_dtype
    from ..models.arch import get_arch

    spec = get_arch(scenario.model_type)
    config = spec.build_config(tiny=tiny, **config_overrides)
    with default_dtype(DTYPES[scenario.dtype]), torch.device("cpu"), parameters_on_meta():
        return spec.model_class(config)


def device_lookup(device_map: dict[str, Any]) -> Callable[[str], torch.device]:
    """``name -> device`` for a tensor's qualified name under an accelerate-style ``device_map`` (longest module
    prefix wins; ints are CUDA indices).

    >>> where = device_lookup({"": "cpu", "lm_head": "meta"})
    >>> where("lm_head.weight").type, where("model.embed.weight").type
    ('meta', 'cpu')
    """
    prefixes = sorted(device_map, key=len, reverse=True)

    def device_of(name: str) -> torch.device:
        for prefix in prefixes:
            if prefix == "" or name == prefix or name.startswith(prefix + "."):
                d = device_map[prefix]
                return torch.device(f"cuda:{d}" if isinstance(d, int) else d)
        raise KeyError(f"{name} is in no device_map entry")

    return device_of


def materialize(model: nn.Module, device: str | torch.device | Callable[[str], torch.device]) -> nn.Module:
    """Give every parameter empty storage and every buffer its value on ``device`` (one device, or ``name ->
    device``); shared tensors stay shared. Returns ``model``."""
    if callable(device):
        device_of = device
    else:
        single = torch.device(device)

        def device_of(name: str) -> torch.device:
            return single

    made: dict[int, torch.Tensor] = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        for kind in ("_parameters", "_buffers"):
            table = getattr(module, kind)
            for name, tensor in list(table.items()):
                if tensor is None:
                    continue
                if id(tensor) not in made:
                    where = device_of(f"{prefix}.{name}" if prefix else name)
                    new = torch.empty_like(tensor, device=where)
                    if kind == "_parameters":
                        new = type(tensor)(new, requires_grad=tensor.requires_grad)
                    elif tensor.device.type != "meta":
                        new.copy_(tensor)
                    made[id(tensor)] = new
                table[name] = made[id(tensor)]
    return model


@torch.no_grad()
def fast_init_(model: nn.Module, std: float = INIT_STD) -> nn.Module:
    """In place: floating parameters ~ N(0, std); 1-D ``*bias`` 0 and 1-D ``*weight`` (norm scales) 1.

    >>> lin = fast_init_(nn.LayerNorm(4)); lin.weight.tolist(), lin.bias.tolist()
    ([1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0])
    """
    for name, p in model.named_parameters():
        if not p.is_floating_point():
            continue
        leaf = name.rsplit(".", 1)[-1]
        if p.dim() == 1 and leaf == "bias":
            p.zero_()
        elif p.dim() == 1 and leaf == "weight":
            p.fill_(1.0)
        else:
            p.normal_(0.0, std)
    return model


def build_fast(scenario: Any, device: str | torch.device | Callable[[str], torch.device] = "cpu",
               tiny: bool = False, **config_overrides: Any) -> nn.Module:
    """The prepared model of ``scenario`` built on ``device`` (meta, then empty storage, then ``fast_init_``)."""
    from ..memory.setup import prepare

    model = build_meta(scenario, tiny, **config_overrides)
    fast_init_(materialize(model, device))
    return prepare(model, scenario)


def meta_tensors(model: nn.Module) -> list[str]:
    """Names of parameters / buffers still on the meta device (none after ``materialize``)."""
    named = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    return [name for name, t in named if t.device.type == "meta"]
