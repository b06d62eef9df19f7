"""The logits of the stack the seeds' figures were measured on (``MemoryScenario.legacy_stack``), as an option.

ms-swift 2.2.0 ran transformers 4.4x and the models' remote code. Two things there hold more memory than vlmref's
own models on transformers 5.x, both at the output head:

* generation computed the logits of *every* prompt position in the prefill (``logits_to_keep`` arrived in 4.45);
  vlmref's ``generate`` keeps the last position's only. The workload passes no ``logits_to_keep`` then.
* the output head's logits came back as float32 for the whole sequence where that code upcast them
  (``FamilySpec.legacy_fp32_logits``: 4.4x ``LlamaForCausalLM`` / ``MistralForCausalLM`` ``logits.float()``, the
  CogVLM and InternLM-XComposer2 remote code; Qwen-VL's remote code kept them in bf16). ``legacy_logits`` makes the
  head's output float32 with a forward hook for the length of a ``with`` block.

What it leaves out, stated: 4.4x's loss made one more float32 copy of the shifted logits (``[..., :-1, :]
.contiguous()``) where vlmref's loss reshapes into one; Qwen-VL's remote loss ran in bf16 where vlmref's upcasts.

>>> import torch
>>> head = torch.nn.Linear(4, 6, dtype=torch.bfloat16)
>>> with legacy_logits(head, True):
...     head(torch.ones(1, 4, dtype=torch.bfloat16)).dtype
torch.float32
>>> head(torch.ones(1, 4, dtype=torch.bfloat16)).dtype
torch.bfloat16
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from .scenario import MemoryScenario


def output_head(model: Any) -> torch.nn.Module:
    """The module that makes the logits (``get_output_embeddings``, through a peft wrapper)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(base).__name__} has no output head (get_output_embeddings() is None)")
    return head


@contextlib.contextmanager
def legacy_logits(head: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """While active, ``head``'s output is float32 (the upcast in the forward of the legacy stack)."""
    if not enabled:
        yield
        return
    handle = head.register_forward_hook(lambda module, args, output: output.float())
    try:
        yield
    finally:
        handle.remove()


def legacy_stack(model: Any, scenario: MemoryScenario) -> contextlib.AbstractContextManager:
    """The float32 head of ``scenario``'s family for a ``legacy_stack`` scenario (a no-op context otherwise)."""
    from ..models.family import family_of

    enabled = scenario.legacy_stack and family_of(scenario.model_type).legacy_fp32_logits
    return legacy_logits(output_head(model), enabled) if enabled else contextlib.nullcontext()


def keep_last_logits(scenario: MemoryScenario) -> bool:
    """Whether generation keeps the last position's logits only (False: the legacy prefill, all of them)."""
    return not scenario.legacy_stack
