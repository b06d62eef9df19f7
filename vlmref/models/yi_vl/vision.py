"""Yi-VL's vision side: CLIP ViT-H/14-448 under upstream's key names, and the ``mlp2x_gelu_Norm`` projector.

Upstream (01-ai/Yi ``VL/llava``) wraps a transformers ``CLIPVisionModel`` in ``CLIPVisionTower.vision_tower``, so the
checkpoint keys are ``model.vision_tower.vision_tower.vision_model.{embeddings,pre_layrnorm,encoder,post_layernorm}.*``.
transformers 5 dropped the ``vision_model`` level from ``CLIPVisionModel``; ``CLIPVisionTransformer`` here rebuilds
it from transformers' CLIP blocks (embeddings, encoder layers) so the names stay the upstream ones::

    >>> from transformers import CLIPVisionConfig
    >>> tower = YiVLVisionTower(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    ...                                          num_attention_heads=4, image_size=28, patch_size=14))
    >>> sorted(tower.state_dict())[0]
    'vision_tower.vision_model.embeddings.class_embedding'
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPVisionConfig
from transformers.models.clip.modeling_clip import CLIPEncoderLayer, CLIPVisionEmbeddings


class _Encoder(nn.Module):
    """``encoder.layers.{i}`` (transformers ``CLIPEncoderLayer``)."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(config) for _ in range(config.num_hidden_layers)])


class CLIPVisionTransformer(nn.Module):
    """transformers' CLIP vision transformer body (``vision_model`` of ``CLIPVisionModel`` before transformers 5)."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = CLIPVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = _Encoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def hidden_state(self, pixel_values: torch.Tensor, layer: int) -> torch.Tensor:
        """``hidden_states[layer]`` of HF CLIP (index 0 = after ``pre_layrnorm``; -1 = last layer output, before
        ``post_layernorm``). Only the layers needed are run."""
        depth = len(self.encoder.layers)
        index = layer if layer >= 0 else depth + 1 + layer
        if not 0 <= index <= depth:
            raise ValueError(f"vision layer {layer} out of range for {depth} layers")
        hidden = self.pre_layrnorm(self.embeddings(pixel_values))
        for block in self.encoder.layers[:index]:
            hidden = block(hidden, None)
        return hidden


class _VisionModelKeys(nn.Module):
    """Holds ``vision_model``: the level transformers < 5 ``CLIPVisionModel`` had."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.vision_model = CLIPVisionTransformer(config)


class YiVLVisionTower(nn.Module):
    """Upstream ``CLIPVisionTower``: ``feature_select`` = hidden state ``select_layer``, CLS dropped for 'patch'."""

    def __init__(self, config: CLIPVisionConfig, select_layer: int = -2, select_feature: str = "patch") -> None:
        super().__init__()
        self.vision_tower = _VisionModelKeys(config)
        self.select_layer = select_layer
        self.select_feature = select_feature

    @property
    def num_patches(self) -> int:
        config = self.vision_tower.vision_model.config
        return (config.image_size // config.patch_size) ** 2

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, num_patches, width) (or num_patches + 1 with 'cls_patch')."""
        body = self.vision_tower.vision_model
        dtype = body.embeddings.patch_embedding.weight.dtype
        hidden = body.hidden_state(pixel_values.to(dtype), self.select_layer)
        return hidden[:, 1:] if self.select_feature == "patch" else hidden


def build_projector(mm_hidden_size: int, hidden_size: int) -> nn.Sequential:
    """``mlp2x_gelu_Norm``: Linear, LayerNorm, GELU, Linear, LayerNorm (state-dict indices 0, 1, 3, 4)."""
    return nn.Sequential(
        nn.Linear(mm_hidden_size, hidden_size),
        nn.LayerNorm(hidden_size),
        nn.GELU(),
        nn.Linear(hidden_size, hidden_size),
        nn.LayerNorm(hidden_size),
    )
