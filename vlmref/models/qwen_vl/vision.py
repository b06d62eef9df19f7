"""Qwen-VL's visual encoder: ViT-bigG/14 at 448 px + the 256-query cross-attention resampler (``attn_pool``).

Module names and shapes follow upstream ``visual.py`` so ``state_dict()`` keys are the checkpoint's
``transformer.visual.*`` keys (under the LLM's ``transformer`` prefix)::

    conv1.weight                                (1664, 3, 14, 14)   no bias
    positional_embedding                        (256, 1664)         bicubic-resized to the 32x32 patch grid
    ln_pre.{weight,bias}
    transformer.resblocks.N.{ln_1,ln_2}.{weight,bias}
    transformer.resblocks.N.attn.in_proj.{weight,bias}   (4992, 1664) an nn.Linear, heads interleaved [q_h|k_h|v_h]
    transformer.resblocks.N.attn.out_proj.{weight,bias}
    transformer.resblocks.N.mlp.c_fc.{weight,bias} (8192, 1664), mlp.c_proj (1664, 8192); exact GELU between
    attn_pool.{query,pos_embed}                 (256, 4096)         pos_embed: fixed 2-D sin-cos, requires_grad False
    attn_pool.kv_proj.weight                    (4096, 1664)        no bias
    attn_pool.attn.{in_proj_weight,in_proj_bias,out_proj.weight,out_proj.bias}   torch nn.MultiheadAttention, 32 heads
    attn_pool.{ln_q,ln_kv}.{weight,bias}, ln_post.{weight,bias}, proj (4096, 4096)

>>> import torch
>>> from vlmref.models.qwen_vl.config import QWenVLConfig, QWEN_VL_CHAT, TINY
>>> from vlmref.models.arch import _merge
>>> vit = QWenVisionTransformer(QWenVLConfig(**_merge(QWEN_VL_CHAT, TINY)))
>>> vit(torch.zeros(2, 3, 448, 448)).shape
torch.Size([2, 256, 64])
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer

from .config import QWenVLConfig

VISUAL_LN_EPS = 1e-6  # visual.py: norm_layer = partial(nn.LayerNorm, eps=1e-6)
POSITIONAL_ROWS = 256  # visual.py: nn.Parameter(scale * torch.randn(256, width)), resized to the patch grid


def resize_abs_pos(abs_pos: torch.Tensor, tgt_len: int) -> torch.Tensor:
    """A (L, C) square grid of position vectors resized to ``tgt_len`` rows (bicubic, computed in float32).

    Upstream ``get_abs_pos``: unchanged when the side lengths agree, else ``F.interpolate(..., mode='bicubic',
    align_corners=False)`` on the (1, C, s, s) grid and cast back to the parameter's dtype.
    """
    src, tgt = int(math.sqrt(abs_pos.size(0))), int(math.sqrt(tgt_len))
    if src == tgt:
        return abs_pos
    grid = abs_pos.float().reshape(1, src, src, -1).permute(0, 3, 1, 2)
    out = F.interpolate(grid, size=(tgt, tgt), mode="bicubic", align_corners=False)
    return out.permute(0, 2, 3, 1).flatten(0, 2).to(abs_pos.dtype)


def sincos_pos_embed_2d(embed_dim: int, grid_size: int) -> torch.Tensor:
    """The MAE 2-D sin-cos table (grid_size**2, embed_dim), computed in float32 numpy as upstream does.

    Row r = h * grid_size + w; the first half of the channels encodes the w coordinate (upstream's meshgrid puts w
    first), the second half h; each half is [sin(pos * omega), cos(pos * omega)] with omega_i = 10000 ** -(i / (D/4)).
    """
    if embed_dim % 4:
        raise ValueError(f"embed_dim {embed_dim} must be divisible by 4")
    coords = np.arange(grid_size, dtype=np.float32)
    grid_w, grid_h = np.meshgrid(coords, coords)  # grid_w[h, w] = w, grid_h[h, w] = h

    def one_axis(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = np.arange(dim // 2, dtype=np.float32) / np.float32(dim / 2.0)
        omega = (np.float32(1.0) / np.float32(10000) ** omega).astype(np.float32)
        out = np.outer(pos.reshape(-1), omega).astype(np.float32)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    table = np.concatenate([one_axis(embed_dim // 2, grid_w), one_axis(embed_dim // 2, grid_h)], axis=1)
    return torch.from_numpy(table.astype(np.float32))


class VisualAttention(nn.Module):
    """Self-attention with one fused ``in_proj`` Linear whose output is laid out per head as [q | k | v]."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.in_proj = nn.Linear(embed_dim, 3 * embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, L, D)
        n, length, _ = x.shape
        qkv = self.in_proj(x).view(n, length, self.num_heads, 3 * self.head_dim)
        q, k, v = (t.transpose(1, 2) for t in qkv.split(self.head_dim, dim=-1))  # (N, H, L, hd) each
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(n, length, -1))


class VisualAttentionBlock(GradientCheckpointingLayer):
    """Pre-norm ViT block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``, MLP = c_fc -> GELU -> c_proj."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=VISUAL_LN_EPS)
        self.ln_2 = nn.LayerNorm(width, eps=VISUAL_LN_EPS)
        self.attn = VisualAttention(width, heads)
        mlp_width = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, mlp_width)), ("gelu", nn.GELU()), ("c_proj", nn.Linear(mlp_width, width))])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class VisualTransformer(nn.Module):
    """The block stack (upstream ``TransformerBlock``; its attribute ``resblocks`` names the keys)."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(VisualAttentionBlock(width, heads, mlp_ratio) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class Resampler(nn.Module):
    """One cross-attention layer: ``n_queries`` learned queries attend over the patch features.

    query = ln_q(query) + pos_embed; key = ln_kv(kv_proj(x)) + pos_embed resized to the patch grid; value =
    ln_kv(kv_proj(x)) (no position). ``attn`` is torch's ``nn.MultiheadAttention`` as upstream (same key names).
    """

    def __init__(self, grid_size: int, embed_dim: int, num_heads: int, kv_dim: int) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.num_queries = grid_size**2
        self.pos_embed = nn.Parameter(torch.empty(self.num_queries, embed_dim), requires_grad=False)
        self.query = nn.Parameter(torch.empty(self.num_queries, embed_dim))
        self.kv_proj = nn.Linear(kv_dim, embed_dim, bias=False) if kv_dim != embed_dim else nn.Identity()
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
        self.ln_q = nn.LayerNorm(embed_dim, eps=VISUAL_LN_EPS)
        self.ln_kv = nn.LayerNorm(embed_dim, eps=VISUAL_LN_EPS)

    def init_own_params(self) -> None:
        if self.query.device.type == "meta":
            return
        init.copy_(self.pos_embed, sincos_pos_embed_2d(self.pos_embed.shape[1], self.grid_size))
        init.trunc_normal_(self.query, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, L, kv_dim) -> (N, n_queries, embed_dim)
        key_pos = resize_abs_pos(self.pos_embed, x.size(1)).to(x.device)
        x = self.ln_kv(self.kv_proj(x))
        query = (self.ln_q(self.query) + self.pos_embed).unsqueeze(0).expand(x.shape[0], -1, -1)
        return self.attn(query, x + key_pos.unsqueeze(0), x, need_weights=False)[0]


class QWenVisionTransformer(nn.Module):
    """Pixels (N, 3, 448, 448), CLIP-normalised -> (N, n_queries, output_dim) features for the LLM."""

    def __init__(self, config: QWenVLConfig) -> None:
        super().__init__()
        v = config.visual
        width, patch, output_dim = int(v["width"]), int(v["patch_size"]), int(v["output_dim"])
        self.image_size, self.patch_size, self.width = int(v["image_size"]), patch, width
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.positional_embedding = nn.Parameter(torch.empty(POSITIONAL_ROWS, width))
        self.ln_pre = nn.LayerNorm(width, eps=VISUAL_LN_EPS)
        self.transformer = VisualTransformer(width, int(v["layers"]), int(v["heads"]), float(v["mlp_ratio"]))
        heads = int(v.get("attn_pool_heads", output_dim // 128))
        self.attn_pool = Resampler(int(round(math.sqrt(config.n_queries))), output_dim, heads, kv_dim=width)
        self.ln_post = nn.LayerNorm(output_dim, eps=VISUAL_LN_EPS)
        self.proj = nn.Parameter(torch.empty(output_dim, output_dim))

    def init_own_params(self) -> None:
        if self.proj.device.type == "meta":
            return
        init.normal_(self.positional_embedding, std=self.width**-0.5)
        init.normal_(self.proj, std=self.proj.shape[0] ** -0.5)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = pixel_values.to(dtype=self.conv1.weight.dtype, device=self.conv1.weight.device)
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (N, grid**2, width)
        x = x + resize_abs_pos(self.positional_embedding, x.size(1)).to(x.device)
        x = self.transformer(self.ln_pre(x))
        x = self.ln_post(self.attn_pool(x))
        return x @ self.proj.to(x.device)
