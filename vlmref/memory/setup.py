"""Build the model a scenario runs: vlmref's own implementation, in the scenario's dtype, prepared by the code
``vlmref sft`` prepares it with (``training.prepare_model_for_training`` with the scenario's ``sft_arguments``:
gradient checkpointing with ``enable_input_require_grads``, peft LoRA, or every parameter trainable) or as
``vlmref infer`` does, then given storage: fake (``FakeTensorMode``: shapes, no memory), or real.

>>> from vlmref.memory.scenario import MemoryScenario
>>> model = build_model(MemoryScenario("qwen-vl-chat", "sft"), device="meta", tiny=True)
>>> sum(p.numel() for p in model.parameters() if p.requires_grad) < 10**5  # LoRA only
True
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..models.arch import get_arch
from ..models.model_types import MODELS
from .scenario import MemoryScenario

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SYNTHETIC_DATASET = "memory-scenario-synthetic-sample"  # the --dataset of a scenario's flags: its batch is built here


def sft_arguments(scenario: MemoryScenario) -> Any:
    """The resolved ``SftArguments`` of ``vlmref sft`` run with the scenario's flags (``MemoryScenario.sft_flags``) on
    ``world_size`` GPUs that have bf16: what model preparation, the optimizer and the train step are built from."""
    from ..llm.sft_args import parse_sft_args

    quiet = lambda message: None  # noqa: E731 - the notes sft prints at start
    args = parse_sft_args(["--dataset", SYNTHETIC_DATASET, *scenario.sft_flags()], log=quiet)
    return args.resolve(world_size=scenario.world_size, cuda=True, bf16_supported=True, log=quiet)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def gradient_checkpointing(scenario: MemoryScenario) -> bool:
    if scenario.gradient_checkpointing is not None:
        return scenario.gradient_checkpointing
    return MODELS.get(scenario.model_type).gradient_checkpointing


def build_model(scenario: MemoryScenario, device: str | torch.device = "meta", tiny: bool = False,
                **config_overrides: Any) -> Any:
    """The prepared model with its tensors on ``device`` (``meta``: no storage; real devices: random init)."""
    spec = get_arch(scenario.model_type)
    config = spec.build_config(tiny=tiny, **config_overrides)
    with default_dtype(DTYPES[scenario.dtype]), torch.device(device):
        model = spec.model_class(config)
    return prepare(model, scenario)


def prepare(model: Any, scenario: MemoryScenario) -> Any:
    if scenario.mode == "infer":
        model.requires_grad_(False)
        model.config.use_cache = True
        return model.eval()
    from ..training.model_prep import prepare_model_for_training

    model = prepare_model_for_training(model, sft_arguments(scenario), log=lambda message: None)
    return model.train()


def fakeify(model: Any, fake_mode: Any, device: str = "cpu") -> None:
    """Give every meta parameter and buffer a fake tensor (same shape, dtype, ``requires_grad``; tied ones stay tied).

    Done by assignment rather than ``module.to_empty``: ``Module._apply`` swaps tensors, which fake tensors refuse.
    """
    made: dict[int, torch.Tensor] = {}
    with fake_mode:
        for module in model.modules():
            for kind in ("_parameters", "_buffers"):
                table = getattr(module, kind)
                for name, tensor in list(table.items()):
                    if tensor is None:
                        continue
                    if id(tensor) not in made:
                        empty = torch.empty(tensor.shape, dtype=tensor.dtype, device=device)
                        made[id(tensor)] = (torch.nn.Parameter(empty, requires_grad=tensor.requires_grad)
                                            if kind == "_parameters" else empty)
                    table[name] = made[id(tensor)]


def device_map_for(model: Any, devices: int, gpu_bytes: int) -> dict[str, int]:
    """accelerate's balanced ``device_map='auto'`` over ``devices`` GPUs of ``gpu_bytes`` each (what transformers does
    for ``from_pretrained(device_map='auto')``, which ms-swift uses when a process sees several GPUs)."""
    import logging

    from accelerate.utils import get_balanced_memory, infer_auto_device_map

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    no_split = list(getattr(base, "_no_split_modules", None) or [])
    max_memory = {i: gpu_bytes for i in range(devices)}
    quiet = logging.getLogger("accelerate.utils.modeling")  # "Device 0 is not available": planning for GPUs not here
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        balanced = get_balanced_memory(base, max_memory=max_memory, no_split_module_classes=no_split)
        return infer_auto_device_map(base, max_memory=balanced, no_split_module_classes=no_split)
    finally:
        quiet.setLevel(level)


def bytes_per_device(model: Any, device_map: dict[str, int]) -> dict[int, dict[str, int]]:
    """Parameter / buffer / trainable-parameter bytes each device of ``device_map`` holds (LoRA adapters go with their
    base layer)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    prefixes = sorted(device_map, key=len, reverse=True)

    def device_of(name: str) -> int:
        for prefix in prefixes:
            if prefix == "" or name == prefix or name.startswith(prefix + "."):
                return device_map[prefix]
        raise KeyError(f"{name} is in no device_map entry")

    out: dict[int, dict[str, int]] = {d: {"parameters": 0, "buffers": 0, "trainable": 0}
                                      for d in sorted(set(device_map.values()))}
    seen: set[int] = set()
    for name, p in base.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        d = device_of(name)
        nbytes = p.numel() * p.element_size()
        out[d]["parameters"] += nbytes
        if p.requires_grad:
            out[d]["trainable"] += nbytes
    for name, b in base.named_buffers():
        out[device_of(name)]["buffers"] += b.numel() * b.element_size()
    return out
