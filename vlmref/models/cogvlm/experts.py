"""CogVLM's visual-expert decoder layer: every projection exists twice, one copy for image tokens, one for text.

Routing and positions follow THUDM/cogvlm-chat-hf ``modeling_cogvlm.py`` (read through the mindnlp and
transformers-port copies; lmdeploy's CogVLM position logic agrees):

* ``token_type_ids`` 1 marks the template's 1227 image positions (boi, 1225 patches, eoi), 0 text.
* ``get_expert_mask``: a position uses the **vision** expert iff it and the NEXT position are image positions. So
  boi and the 1225 patches go to the vision experts and eoi (followed by text) to the language experts; a
  one-token decode step is always language.
* ``build_position_ids``: boi and eoi count as text, and the whole patch run shares ONE position. With BOS at 0 the
  ids are BOS 0, boi 1, every patch 2, eoi 3, first text token 4, ... Padding (attention_mask 0) adds nothing, so a
  left-padded row starts at 1 (a constant shift, which rotary attention does not see).

>>> tt = torch.tensor([[0, 1, 1, 1, 1, 0, 0]])  # BOS, boi, 2 patches, eoi, text, text
>>> build_position_ids(tt).tolist()
[[0, 1, 2, 2, 3, 4, 5]]
>>> get_expert_mask(tt).int().tolist()
[[0, 1, 1, 1, 0, 0, 0]]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer

from .config import LANGUAGE_TOKEN_TYPE, ROPE_BASE, VISION_TOKEN_TYPE


def get_expert_mask(token_type_ids: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: True where the vision expert applies (image position followed by an image position)."""
    is_image = token_type_ids == VISION_TOKEN_TYPE
    vision = torch.zeros_like(is_image)
    vision[:, :-1] = is_image[:, :-1] & is_image[:, 1:]
    return vision


def build_position_ids(token_type_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Upstream rotary position ids: one shared id for each run of image patches; boi/eoi count as text."""
    kind = token_type_ids.clone()
    if attention_mask is not None:
        kind[~attention_mask.bool()] = -1  # padding: neither text nor image
    text, image = kind == LANGUAGE_TOKEN_TYPE, kind == VISION_TOKEN_TYPE
    edge = torch.zeros_like(image)  # first and last position of each image run (boi, eoi)
    edge[:, 1:] |= image[:, 1:] & text[:, :-1]
    edge[:, 0] |= image[:, 0]
    edge[:, :-1] |= image[:, :-1] & text[:, 1:]
    edge[:, -1] |= image[:, -1]
    text, image = text | edge, image & ~edge
    step = torch.zeros_like(kind)
    step[:, 1:] = (text[:, 1:] | (image[:, 1:] & text[:, :-1])).long()
    return step.cumsum(dim=-1)


def rope_inv_freq(head_dim: int, device=None) -> torch.Tensor:
    """1 / 10000^(2i / head_dim), float32."""
    return 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))


def rotary_cos_sin(position_ids: torch.Tensor, head_dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (B, 1, L, head_dim) of the rotate-half RoPE, computed in float32 from fresh frequencies, then cast."""
    freqs = position_ids.to(torch.float32)[..., None] * rope_inv_freq(head_dim, position_ids.device)
    emb = torch.cat([freqs, freqs], dim=-1)[:, None]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


def route(x: torch.Tensor, vision_mask: torch.Tensor, vision: nn.Module, language: nn.Module) -> torch.Tensor:
    """``vision(x)`` on the vision-expert positions, ``language(x)`` on the others (upstream's masked scatter).

    Both experts are always called, on an empty selection if need be, as upstream does: every rank of a sharded
    (ZeRO-3 / FSDP) run then runs the same modules whatever its batch holds."""
    from_vision, from_language = vision(x[vision_mask]), language(x[~vision_mask])
    out = from_language.new_empty(*x.shape[:-1], from_language.shape[-1])
    out[vision_mask] = from_vision.to(out.dtype)
    out[~vision_mask] = from_language
    return out


class CogVLMRMSNorm(nn.Module):
    """RMSNorm as upstream: normalise in float32, multiply by the weight, cast back."""

    def __init__(self, hidden_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = hidden_states.dtype
        x = hidden_states.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return (self.weight * x).to(dtype)


class CogVLMMLP(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class CogVLMVisionExpertMLP(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.language_mlp = CogVLMMLP(config)
        self.vision_mlp = CogVLMMLP(config)

    def forward(self, x: torch.Tensor, vision_mask: torch.Tensor) -> torch.Tensor:
        return route(x, vision_mask, self.vision_mlp, self.language_mlp)


class CogVLMRotaryEmbedding(nn.Module):
    """Holds upstream's persistent ``inv_freq`` buffer (``self_attn.rotary_emb.inv_freq``, head_dim / 2 floats) so
    the state dict matches the upstream module tree. Its values are not read: ``rotary_cos_sin`` recomputes the
    frequencies in float32 (upstream uses the buffer in the model dtype). A checkpoint without the key loads too."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.register_buffer("inv_freq", rope_inv_freq(head_dim))
        self.register_load_state_dict_pre_hook(self._fill_missing)

    def _fill_missing(self, module, state_dict, prefix, *args) -> None:
        key = prefix + "inv_freq"
        if key not in state_dict:
            state_dict[key] = rope_inv_freq(self.head_dim, self.inv_freq.device).to(self.inv_freq.dtype)


class CogVLMVisionExpertAttention(nn.Module):
    """Fused qkv and output projection per expert, rotary positions, causal SDPA over the KV cache."""

    def __init__(self, config, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.hidden_size // self.num_heads
        self.vision_expert_query_key_value = nn.Linear(self.hidden_size, self.hidden_size * 3, bias=False)
        self.vision_expert_dense = nn.Linear(self.hidden_size, self.hidden_size, bias=False)
        self.language_expert_query_key_value = nn.Linear(self.hidden_size, self.hidden_size * 3, bias=False)
        self.language_expert_dense = nn.Linear(self.hidden_size, self.hidden_size, bias=False)
        self.rotary_emb = CogVLMRotaryEmbedding(self.head_dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        vision_mask: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attention_mask: torch.Tensor | None,
        cache=None,
    ) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        qkv = route(
            hidden_states, vision_mask, self.vision_expert_query_key_value, self.language_expert_query_key_value
        )
        shape = (batch, length, self.num_heads, self.head_dim)
        q, k, v = (t.view(shape).transpose(1, 2) for t in qkv.split(self.hidden_size, dim=-1))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        # no mask: a prefill without padding (causal) or a one-token step (nothing to mask), see modeling._causal_mask
        causal = attention_mask is None and length > 1
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, is_causal=causal)
        out = out.transpose(1, 2).reshape(batch, length, self.hidden_size)
        return route(out, vision_mask, self.vision_expert_dense, self.language_expert_dense)


class CogVLMDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: ``h + attn(input_layernorm(h))``, then ``h + mlp(post_attention_layernorm(h))``."""

    def __init__(self, config, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = CogVLMVisionExpertAttention(config, layer_idx)
        self.mlp = CogVLMVisionExpertMLP(config)
        self.input_layernorm = CogVLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = CogVLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        vision_mask: torch.Tensor | None = None,
        cos: torch.Tensor | None = None,
        sin: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache=None,
        use_cache: bool = False,
    ) -> torch.Tensor:
        if vision_mask is None:  # text only
            vision_mask = torch.zeros(hidden_states.shape[:2], dtype=torch.bool, device=hidden_states.device)
        normed = self.input_layernorm(hidden_states)
        hidden_states = hidden_states + self.self_attn(normed, vision_mask, cos, sin, attention_mask, cache)
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states), vision_mask)
