"""Eager attention, for scenarios that reproduce runs made with it.

vlmref's models (and transformers' ``sdpa`` path) call ``torch.nn.functional.scaled_dot_product_attention``, whose
fused kernels never hold the (heads, L, L) attention matrix. ms-swift 2.2.0 ran most of the seeds' models with
*eager* attention instead (``get_model_tokenizer_with_flash_attn`` sets ``_attn_implementation`` to ``eager`` unless
``--use_flash_attn true``; Qwen-VL and InternLM-XComposer2 take their own non-flash path), which materialises that
matrix: the scores in the model dtype, the softmax in fp32 and its cast back, as transformers' ``eager_attention_forward``
does. ``eager_attention()`` swaps that computation in for the length of a ``with`` block, so a scenario with
``attention='eager'`` traces (or, on a GPU, runs) the memory behaviour of those runs with vlmref's models.

>>> import torch
>>> q = k = v = torch.randn(1, 2, 5, 4)
>>> with eager_attention():
...     eager = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
>>> torch.allclose(eager, torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-6)
True
"""

from __future__ import annotations

import contextlib
import math

import torch


def eager_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: torch.Tensor | None = None,
               dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
               enable_gqa: bool = False) -> torch.Tensor:
    """``scaled_dot_product_attention``'s result computed the eager way (scores, fp32 softmax, cast, matmul)."""
    if key.shape[-3] != query.shape[-3]:  # grouped-query attention: repeat K/V heads as transformers' repeat_kv does
        groups = query.shape[-3] // key.shape[-3]
        key = key.repeat_interleave(groups, dim=-3)
        value = value.repeat_interleave(groups, dim=-3)
    scores = torch.matmul(query, key.transpose(-2, -1)) * (scale if scale is not None else 1 / math.sqrt(query.shape[-1]))
    q_len, k_len = query.shape[-2], key.shape[-2]
    if is_causal:
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(diagonal=k_len - q_len)
        scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attn_mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    if dropout_p > 0:
        weights = torch.nn.functional.dropout(weights, p=dropout_p, training=True)
    return torch.matmul(weights, value)


@contextlib.contextmanager
def eager_attention(enabled: bool = True):
    """Route every ``torch.nn.functional.scaled_dot_product_attention`` call through :func:`eager_sdpa`."""
    if not enabled:
        yield
        return
    original = torch.nn.functional.scaled_dot_product_attention
    torch.nn.functional.scaled_dot_product_attention = eager_sdpa
    try:
        yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = original
