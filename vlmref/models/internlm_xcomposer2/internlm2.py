"""The InternLM2-7B decoder of XComposer2 / IXC-2.5 with PLoRA in every projection (upstream ``modeling_internlm2.py``).

Key facts carried over (read in the upstream copies listed in ``config.py``):

* ``attention.wqkv`` packs q/k/v per kv group: out features are ``(kv_heads, groups + 2, head_dim)`` with
  ``groups = heads // kv_heads`` -- for each kv head its ``groups`` query heads, then its key, then its value
  (upstream ``rearrange(qkv, 'b q (h gs d) -> b q h gs d', gs=2 + groups)``; q = ``[..., :groups, :]``,
  k = ``[..., -2, :]``, v = ``[..., -1, :]``). Query head ``h * groups + g`` reads kv head ``h``.
* RoPE: rotate-half on the full head_dim, base ``rope_theta``; ``rope_scaling`` ``dynamic`` (NTK: the base grows once
  the sequence exceeds ``max_position_embeddings``) or ``linear``.
* RMSNorm in float32; SwiGLU MLP ``w2(silu(w1 x) * w3 x)``; ``tok_embeddings`` has ``padding_idx = pad_token_id``.

>>> from .config import IXC2_7B, TINY, InternLMXComposer2Config
>>> model = InternLM2Model(InternLMXComposer2Config(**{**IXC2_7B, **TINY}))
>>> tuple(model.layers[0].attention.wqkv.weight.shape)  # (4 + 2 * 2) * 16
(128, 64)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache
from transformers.modeling_layers import GradientCheckpointingLayer

from .plora import PLoRA


class InternLM2RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = hidden_states.dtype
        h = hidden_states.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(dtype)


def rotary_cos_sin(config, position_ids: torch.Tensor, seq_len: int, dtype: torch.dtype):
    """cos/sin (B, L, head_dim) for ``position_ids``; ``seq_len`` (cached + new) drives dynamic NTK scaling."""
    dim, base = config.head_dim, float(config.rope_theta)
    scaling = config.rope_scaling or {}
    positions = position_ids.to(torch.float32)
    if scaling.get("type") == "dynamic" and seq_len > config.max_position_embeddings:
        factor = float(scaling.get("factor", 1.0))
        base = base * ((factor * seq_len / config.max_position_embeddings) - (factor - 1)) ** (dim / (dim - 2))
    elif scaling.get("type") == "linear":
        positions = positions / float(scaling["factor"])
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, device=position_ids.device, dtype=torch.float32) / dim))
    freqs = positions[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, heads, L, D); cos/sin (B, L, D)."""
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


def _plora(config, in_f: int, out_f: int, bias: bool) -> PLoRA:
    return PLoRA(in_f, out_f, bias=bias, r=config.plora_r, alpha=config.plora_alpha, dropout=config.plora_dropout,
                 task_ranks=config.task_lora_ranks)


class InternLM2Attention(nn.Module):
    def __init__(self, config, layer_idx: int) -> None:
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.num_heads, self.num_kv_heads, self.head_dim = (
            config.num_attention_heads, config.num_key_value_heads, config.head_dim)
        self.groups = self.num_heads // self.num_kv_heads
        qkv_out = (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        self.wqkv = _plora(config, config.hidden_size, qkv_out, bias=config.bias)  # upstream bias=config.bias
        self.wo = _plora(config, self.num_heads * self.head_dim, config.hidden_size, bias=config.bias)

    def split_qkv(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, kv*(groups+2)*D) -> q (B, heads, L, D), k/v (B, kv_heads, L, D) in the packed per-group layout."""
        b, n, _ = qkv.shape
        qkv = qkv.view(b, n, self.num_kv_heads, self.groups + 2, self.head_dim)
        q = qkv[..., : self.groups, :].reshape(b, n, self.num_heads, self.head_dim)
        k, v = qkv[..., -2, :], qkv[..., -1, :]
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def forward(self, hidden_states, cos, sin, attn_mask, im_mask, cache: Cache | None, task=None):
        q, k, v = self.split_qkv(self.wqkv(hidden_states, im_mask, task))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        k = k.repeat_interleave(self.groups, dim=1)
        v = v.repeat_interleave(self.groups, dim=1)
        is_causal = attn_mask is None and q.shape[2] == k.shape[2] and q.shape[2] > 1
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                             scale=1.0 / math.sqrt(self.head_dim))
        out = out.transpose(1, 2).reshape(hidden_states.shape[0], hidden_states.shape[1], -1)
        return self.wo(out, im_mask, task)


class InternLM2MLP(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.w1 = _plora(config, config.hidden_size, config.intermediate_size, bias=False)  # upstream bias=False
        self.w3 = _plora(config, config.hidden_size, config.intermediate_size, bias=False)
        self.w2 = _plora(config, config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x, im_mask, task=None):
        return self.w2(F.silu(self.w1(x, im_mask, task)) * self.w3(x, im_mask, task), im_mask, task)


class InternLM2DecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config, layer_idx: int) -> None:
        super().__init__()
        self.attention = InternLM2Attention(config, layer_idx)
        self.feed_forward = InternLM2MLP(config)
        self.attention_norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.ffn_norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, hidden_states, cos, sin, attn_mask=None, im_mask=None, cache=None, task=None):
        residual = hidden_states
        h = self.attention(self.attention_norm(hidden_states), cos, sin, attn_mask, im_mask, cache, task)
        hidden_states = residual + h
        return hidden_states + self.feed_forward(self.ffn_norm(hidden_states), im_mask, task)


def build_attn_mask(attention_mask: torch.Tensor | None, q_len: int, past_len: int, device) -> torch.Tensor | None:
    """Boolean (B, 1, q, past + q) mask: causal AND key not padding. None when plain causal SDPA suffices.

    Rows with no visible key (left-padding queries) see every key instead, so SDPA never returns NaN there.
    """
    if attention_mask is None and (past_len == 0 or q_len == 1):
        return None
    kv_len = past_len + q_len
    q_pos = torch.arange(past_len, kv_len, device=device)[:, None]
    mask = (torch.arange(kv_len, device=device)[None, :] <= q_pos)[None, None]
    if attention_mask is not None:
        mask = mask & attention_mask[:, None, None, -kv_len:].to(device=device, dtype=torch.bool)
    return mask | ~mask.any(dim=-1, keepdim=True)


def default_position_ids(attention_mask: torch.Tensor | None, q_len: int, past_len: int, device) -> torch.Tensor:
    """Upstream prepare_inputs_for_generation: cumsum(attention_mask) - 1 (pads at 1); else past_len + arange."""
    if attention_mask is None:
        return torch.arange(past_len, past_len + q_len, device=device)[None]
    pos = attention_mask.long().cumsum(-1) - 1
    pos = pos.masked_fill(attention_mask == 0, 1)
    return pos[:, -q_len:].to(device)


class InternLM2Model(nn.Module):
    """``model.*`` of the checkpoint: ``tok_embeddings``, ``layers.N``, ``norm``."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(InternLM2DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, inputs_embeds, attention_mask=None, position_ids=None, cache=None, im_mask=None,
                task=None) -> torch.Tensor:
        q_len = inputs_embeds.shape[1]
        past_len = cache.get_seq_length() if cache is not None else 0
        device = inputs_embeds.device
        if position_ids is None:
            position_ids = default_position_ids(attention_mask, q_len, past_len, device)
        position_ids = position_ids.expand(inputs_embeds.shape[0], -1)
        cos, sin = rotary_cos_sin(self.config, position_ids, past_len + q_len, inputs_embeds.dtype)
        attn_mask = build_attn_mask(attention_mask, q_len, past_len, device)
        hidden_states = inputs_embeds
        for layer in self.layers:
            hidden_states = layer(hidden_states, cos, sin, attn_mask=attn_mask, im_mask=im_mask,
                                  cache=cache, task=task)
        return self.norm(hidden_states)
