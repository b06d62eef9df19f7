"""EVA2-CLIP-E vision tower and GLU adapter of CogVLM (``model.vision.*`` in the upstream checkpoint).

Structure (facts from THUDM/cogvlm-chat-hf ``visual.py``, read through the mindnlp and transformers-port copies):

* ``patch_embedding``: Conv2d(3 -> W, kernel = stride = 14, bias), a learned ``cls_embedding`` (1, W) put in front of
  the 35 x 35 patches, plus ``position_embedding`` (1226 rows) added to all 1226 tokens.
* ``transformer.layers``: 63 blocks, "post-norm inside the residual": ``x + LN1(attn(x))`` then ``x + LN2(mlp(x))``
  with ``input_layernorm`` = LN1 and ``post_attention_layernorm`` = LN2 (eps 1e-6). Attention: fused
  ``query_key_value`` (W -> 3W, bias) split as (3, heads, head_dim), no mask, scale head_dim^-0.5; ``dense`` W -> W.
  MLP: ``fc1`` -> exact GELU -> ``fc2``.
* CLS dropped, then ``linear_proj`` (GLU adapter): Linear(W -> H, no bias) -> LayerNorm(H, eps 1e-5) -> GELU ->
  ``down(silu(gate_proj(x)) * dense_h_to_4h(x))`` with ``dense_4h_to_h`` (I -> H); I = the LLM intermediate size.
* ``boi`` and ``eoi`` (1, 1, H) around the patches: 1 + 1225 + 1 = 1227 rows per image.

>>> import torch
>>> from vlmref.models.cogvlm.config import CogVLMConfig, TINY_COGVLM
>>> vision = EVA2CLIPModel(CogVLMConfig(**TINY_COGVLM))
>>> vision(torch.zeros(1, 3, 490, 490)).shape
torch.Size([1, 1227, 64])
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer

from .config import ADAPTER_NORM_EPS


class EVA2CLIPPatchEmbedding(nn.Module):
    def __init__(self, vc: SimpleNamespace) -> None:
        super().__init__()
        self.proj = nn.Conv2d(vc.in_channels, vc.hidden_size, kernel_size=vc.patch_size, stride=vc.patch_size)
        self.cls_embedding = nn.Parameter(torch.zeros(1, vc.hidden_size))
        self.position_embedding = nn.Embedding(vc.num_positions, vc.hidden_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.proj(pixel_values.to(self.proj.weight.dtype)).flatten(2).transpose(1, 2)  # (N, patches, W)
        cls = self.cls_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        if x.shape[1] != self.position_embedding.num_embeddings:
            raise ValueError(
                f"pixel_values give {x.shape[1]} tokens (with CLS) but the tower has "
                f"{self.position_embedding.num_embeddings} positions: images must be "
                f"{int((self.position_embedding.num_embeddings - 1) ** 0.5) * self.proj.kernel_size[0]} px square"
            )
        return x + self.position_embedding.weight.unsqueeze(0)


class EVA2CLIPAttention(nn.Module):
    def __init__(self, vc: SimpleNamespace) -> None:
        super().__init__()
        self.num_heads = vc.num_heads
        self.query_key_value = nn.Linear(vc.hidden_size, vc.hidden_size * 3)
        self.dense = nn.Linear(vc.hidden_size, vc.hidden_size)
        self.output_dropout = nn.Dropout(vc.dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.query_key_value(x).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (N, heads, L, head_dim), full attention
        return self.output_dropout(self.dense(out.transpose(1, 2).reshape(batch, length, -1)))


class EVA2CLIPMLP(nn.Module):
    def __init__(self, vc: SimpleNamespace) -> None:
        super().__init__()
        self.activation_fn = ACT2FN[vc.hidden_act]
        self.fc1 = nn.Linear(vc.hidden_size, vc.intermediate_size)
        self.fc2 = nn.Linear(vc.intermediate_size, vc.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(x)))


class EVA2CLIPTransformerLayer(GradientCheckpointingLayer):
    """``x + input_layernorm(attention(x))``, then ``x + post_attention_layernorm(mlp(x))`` (upstream order)."""

    def __init__(self, vc: SimpleNamespace) -> None:
        super().__init__()
        self.input_layernorm = nn.LayerNorm(vc.hidden_size, eps=vc.layer_norm_eps)
        self.attention = EVA2CLIPAttention(vc)
        self.mlp = EVA2CLIPMLP(vc)
        self.post_attention_layernorm = nn.LayerNorm(vc.hidden_size, eps=vc.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.input_layernorm(self.attention(hidden_states))
        return hidden_states + self.post_attention_layernorm(self.mlp(hidden_states))


class EVA2CLIPTransformer(nn.Module):
    def __init__(self, vc: SimpleNamespace) -> None:
        super().__init__()
        self.layers = nn.ModuleList([EVA2CLIPTransformerLayer(vc) for _ in range(vc.num_hidden_layers)])

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return hidden_states


class CogVLMGLU(nn.Module):
    """The adapter from the vision width to the LLM width (upstream class ``GLU``, key ``model.vision.linear_proj``)."""

    def __init__(self, hidden_size: int, intermediate_size: int, in_features: int) -> None:
        super().__init__()
        self.linear_proj = nn.Linear(in_features, hidden_size, bias=False)
        self.norm1 = nn.LayerNorm(hidden_size, eps=ADAPTER_NORM_EPS)
        self.act1 = nn.GELU()
        self.dense_h_to_4h = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.dense_4h_to_h = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.linear_proj(x)))
        return self.dense_4h_to_h(F.silu(self.gate_proj(x)) * self.dense_h_to_4h(x))


class EVA2CLIPModel(nn.Module):
    """pixel_values (N, 3, 490, 490) -> (N, 1227, hidden): boi, 1225 adapted patch features, eoi."""

    def __init__(self, config) -> None:
        super().__init__()
        vc = SimpleNamespace(**config.vision_config)
        self.patch_embedding = EVA2CLIPPatchEmbedding(vc)
        self.transformer = EVA2CLIPTransformer(vc)
        self.linear_proj = CogVLMGLU(config.hidden_size, config.intermediate_size, in_features=vc.hidden_size)
        self.boi = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.eoi = nn.Parameter(torch.zeros(1, 1, config.hidden_size))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.transformer(self.patch_embedding(pixel_values))
        x = self.linear_proj(x[:, 1:])  # CLS dropped
        n = x.shape[0]
        return torch.cat([self.boi.to(x.dtype).expand(n, -1, -1), x, self.eoi.to(x.dtype).expand(n, -1, -1)], dim=1)
