"""Vision side of XComposer2 / IXC-2.5: CLIP ViT-L/14 tower (``vit.vision_tower.vision_model.*``), the IXC-2.5 HD
layout, and the ``vision_proj`` MLP (upstream ``build_mlp.py``).

* The tower is transformers' CLIP embeddings + ``pre_layrnorm`` + encoder, **without** ``post_layernorm``: upstream
  takes ``hidden_states[-1][:, 1:]`` (last encoder layer, CLS dropped), and the released checkpoints have no
  ``post_layernorm`` keys (the finetune code swaps it for ``nn.Identity`` when the ViT is trained; lmdeploy
  ``to_empty``-s it after loading). No ``position_ids`` key either (non-persistent buffer).
* XComposer2 (``image_layout='fixed'``): one 224-px view -> 16 x 16 = 256 features of width 1024.
* IXC-2.5 (``'hd'``): the image (H, W multiples of 560) is cut into rows x cols tiles (row-major) plus a global view
  (bicubic resize of the whole image to 560 x 560, align_corners False); every view gives 40 x 40 patches, merged
  2 x 2 into 20 x 20 tokens of width 4096 (channel order: top-left, top-right, bottom-left, bottom-right). Layout:
  global rows each followed by ``plora_sub_GN`` (20 x 21), then ``plora_glb_GN``, then the tile mosaic
  (rows*20) x (cols*20) with ``plora_sub_GN`` after each row: ``(rows*cols + 1) * 400 + 1 + (rows + 1) * 20``.
* ``vision_proj``: Linear(in -> hidden), GELU, Linear(hidden -> hidden), in = 1024 (fixed) or 4096 (hd).

>>> import torch
>>> feats = torch.arange(16.0).reshape(1, 16, 1)  # a 4 x 4 grid, width 1
>>> merge_2x2(feats, 4)[0, 0, 0].tolist()  # top-left 2x2 block: patches 0, 1, 4, 5
[0.0, 1.0, 4.0, 5.0]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig
from transformers.models.clip.modeling_clip import CLIPEncoder, CLIPVisionEmbeddings


def clip_config(vision: dict) -> CLIPVisionConfig:
    cfg = CLIPVisionConfig(**vision, attention_dropout=0.0)
    cfg._attn_implementation = "sdpa"
    return cfg


class CLIPVisionTransformer(nn.Module):
    """``vision_model``: embeddings, pre_layrnorm, encoder (upstream key names; no post_layernorm)."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.embeddings = CLIPVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = CLIPEncoder(config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        h = self.pre_layrnorm(self.embeddings(pixel_values))
        return self.encoder(h).last_hidden_state


class CLIPVisionModel(nn.Module):
    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.vision_model = CLIPVisionTransformer(config)


class CLIPVisionTower(nn.Module):
    """``vit``: ``vit.vision_tower.vision_model.*``; returns the last layer's patch features (CLS dropped)."""

    def __init__(self, vision: dict) -> None:
        super().__init__()
        self.config = clip_config(vision)
        self.vision_tower = CLIPVisionModel(self.config)

    @property
    def dtype(self) -> torch.dtype:
        return self.vision_tower.vision_model.embeddings.patch_embedding.weight.dtype

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision_tower.vision_model(pixel_values.to(self.dtype))[:, 1:]


def build_vision_projector(in_features: int, hidden_size: int) -> nn.Sequential:
    """``vision_proj`` = mlp2x_gelu: keys ``vision_proj.0.*`` and ``vision_proj.2.*``."""
    return nn.Sequential(nn.Linear(in_features, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))


def merge_2x2(features: torch.Tensor, side: int) -> torch.Tensor:
    """(B, side*side, C) patch features -> (B, side/2, side/2, 4C), each 2x2 block concatenated row-major."""
    b, _, c = features.shape
    x = features.reshape(b, side // 2, 2, side // 2, 2, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, side // 2, side // 2, 4 * c)


def hd_views(image: torch.Tensor, tile: int) -> tuple[torch.Tensor, int, int]:
    """(3, H, W) or (1, 3, H, W), H/W multiples of ``tile`` -> ((1 + rows*cols), 3, tile, tile) views, rows, cols."""
    if image.dim() == 3:
        image = image[None]
    _, c, height, width = image.shape
    if height % tile or width % tile:
        raise ValueError(f"IXC-2.5 expects H and W multiples of {tile} (the processor pads), got {height}x{width}")
    rows, cols = height // tile, width // tile
    tiles = image.reshape(1, c, rows, tile, cols, tile).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, tile, tile)
    glb = F.interpolate(image.float(), size=(tile, tile), mode="bicubic").to(tiles.dtype)
    return torch.cat([glb, tiles], dim=0), rows, cols


def hd_layout(features: torch.Tensor, rows: int, cols: int, side: int, glb_gn: torch.Tensor, sub_gn: torch.Tensor):
    """One image's view features ((1 + rows*cols), side*side, C) -> (n_positions, 4C) in the upstream order."""
    c4 = 4 * features.shape[-1]
    half = side // 2
    sub_gn, glb_gn = sub_gn.reshape(1, c4).to(features.dtype), glb_gn.reshape(1, c4).to(features.dtype)
    glb = merge_2x2(features[:1], side)[0]  # (half, half, 4C)
    glb = torch.cat([glb, sub_gn.expand(half, 1, c4)], dim=1).reshape(-1, c4)
    sub = merge_2x2(features[1:], side).reshape(rows, cols, half, half, c4).permute(0, 2, 1, 3, 4)
    sub = sub.reshape(rows * half, cols * half, c4)
    sub = torch.cat([sub, sub_gn.expand(rows * half, 1, c4)], dim=1).reshape(-1, c4)
    return torch.cat([glb, glb_gn, sub], dim=0)


def hd_positions(rows: int, cols: int, side: int = 40) -> int:
    half = side // 2
    return (rows * cols + 1) * half * half + 1 + (rows + 1) * half
