"""Partial LoRA (PLoRA): a Linear whose low-rank update applies only to image positions (``im_mask``).

Upstream ``build_mlp.PLoRA(nn.Linear)`` (XComposer2 / IXC-2.5 ``modeling_internlm2.py`` builds every ``wqkv``, ``wo``,
``w1``, ``w2``, ``w3`` with ``lora_r=256, lora_alpha=256``, ``lora_dropout=0.05``)::

    y = x W^T (+ b);   y[im_mask] += Plora_B(Plora_A(dropout(x[im_mask]))) * (alpha / r)

It subclasses ``nn.Linear`` so the checkpoint keys stay ``<name>.weight``, ``<name>.Plora_A.weight``,
``<name>.Plora_B.weight`` and peft's ``target_modules=['wqkv']`` still wraps it (peft passes ``im_mask`` through to the
base layer). IXC-2.5 adds task adapters ``lora_{web,sft,dpo}_{A,B}`` to every PLoRA; they act on all positions, at
scale 1, only when asked (``task='web'`` -> web; ``'write'`` -> sft + dpo), the way lmdeploy's
``merge_xcomposer2d5_task.py`` folds ``B @ A`` into the weight [inferred: the HF forward itself was not read].

>>> import torch
>>> layer = PLoRA(8, 4, bias=False, r=2, alpha=2, dropout=0.0)
>>> x, mask = torch.randn(1, 3, 8), torch.tensor([[False, True, False]])
>>> torch.equal(layer(x, mask)[0, 0], torch.nn.functional.linear(x, layer.weight)[0, 0])
True
"""

from __future__ import annotations

import torch
from torch import nn

TASKS = {"web": ("web",), "write": ("sft", "dpo")}


class PLoRA(nn.Linear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        r: int = 256,
        alpha: float = 256,
        dropout: float = 0.05,
        task_ranks: dict[str, int] | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.lora_r, self.lora_alpha, self.lora_scaling = r, alpha, alpha / r
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.Plora_A = nn.Linear(in_features, r, bias=False)
        self.Plora_B = nn.Linear(r, out_features, bias=False)
        self.task_names = tuple(task_ranks or ())
        for name, rank in (task_ranks or {}).items():
            setattr(self, f"lora_{name}_A", nn.Linear(in_features, rank, bias=False))
            setattr(self, f"lora_{name}_B", nn.Linear(rank, out_features, bias=False))

    def forward(self, x: torch.Tensor, im_mask: torch.Tensor | None = None, task: str | None = None) -> torch.Tensor:
        out = super().forward(x)
        if im_mask is not None and bool(im_mask.any()):
            mask = im_mask.to(torch.bool)
            delta = self.Plora_B(self.Plora_A(self.lora_dropout(x[mask]))) * self.lora_scaling
            out = out.index_put((*mask.nonzero(as_tuple=True),), delta.to(out.dtype), accumulate=True)
        elif self.training:
            # upstream adds the adapter's output on one position times 0, so DDP sees every PLoRA weight used
            out = out + self.Plora_B(self.Plora_A(x[..., :1, :])).sum() * 0
        if task is not None and task != "base":
            for name in TASKS.get(task, (task,)):
                if name not in self.task_names:
                    raise ValueError(f"PLoRA has no task adapter {name!r} (has {self.task_names})")
                a, b = getattr(self, f"lora_{name}_A"), getattr(self, f"lora_{name}_B")
                out = out + b(a(x))
        return out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, plora_r={self.lora_r}, tasks={self.task_names}"
