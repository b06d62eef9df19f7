"""Toy VLM: transformers ``LlamaModel`` + a patchify ``Linear`` "vision tower" + a 2-layer MLP projector.

Keys: ``model.*`` (Llama), ``vision_tower.patch_embed``, ``projector.{0,2}``, ``lm_head``. A 28 x 28 image gives
(28 / 14)^2 = 4 rows, written by ``embed_inputs`` at the template's four -200 positions::

    >>> import torch
    >>> from .config import TINY, TOY_VLM, ToyConfig
    >>> model = ToyForCausalLM(ToyConfig(**{**TOY_VLM, **TINY})).eval()
    >>> model.get_image_features(torch.zeros(1, 3, 28, 28))[0].shape
    torch.Size([4, 32])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, LlamaModel, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from vlmref.models.common import causal_lm_loss, scatter_image_rows
from vlmref.models.kv_cache import cache_output, output_cache, takes_cache

from .config import ToyConfig


class ToyVisionTower(nn.Module):
    """(N, 3, S, S) -> (N, (S / P)^2, vision_hidden_size): non-overlapping P x P patches through one Linear."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.patch_embed = nn.Linear(3 * config.patch_size**2, config.vision_hidden_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        patches = F.unfold(pixel_values.to(self.patch_embed.weight.dtype), kernel_size=p, stride=p)
        return self.patch_embed(patches.transpose(1, 2))


class ToyForCausalLM(PreTrainedModel, GenerationMixin):
    """The toy VLM with the vlmref model contract (``embed_inputs``, ``get_image_features``, ``generate``)."""

    config_class = ToyConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer"]
    _skip_keys_device_placement = ["cache", "past_key_values"]
    _supports_sdpa = True
    _supports_attention_backend = True
    image_span_margin = (0, 0)

    def __init__(self, config: ToyConfig) -> None:
        super().__init__(config)
        self.model = LlamaModel(config)
        self.vision_tower = ToyVisionTower(config)
        self.projector = nn.Sequential(nn.Linear(config.vision_hidden_size, config.hidden_size), nn.GELU(),
                                       nn.Linear(config.hidden_size, config.hidden_size))
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.lm_head = new_embeddings

    # ---- images ----------------------------------------------------------------------------------------------
    def get_image_features(self, pixel_values: torch.Tensor, **kwargs: Any) -> list[torch.Tensor]:
        """One ((S / P)^2, hidden) tensor per image."""
        if pixel_values.shape[0] == 0:
            return []
        return list(self.projector(self.vision_tower(pixel_values)).unbind(0))

    def embed_inputs(self, input_ids: torch.LongTensor, pixel_values: torch.Tensor | None = None,
                     images_per_sample: torch.Tensor | None = None, **extras: Any) -> torch.Tensor:
        """Token embeddings (B, L, H) with image features written at the -200 runs, image by image in order."""
        mask = input_ids == self.config.image_token_index
        embeds = self.model.embed_tokens(input_ids.masked_fill(mask | (input_ids < 0), 0))
        if pixel_values is None or pixel_values.shape[0] == 0:
            if int(mask.sum()):
                raise ValueError(f"{int(mask.sum())} image positions (-200) in input_ids but no pixel_values")
            return embeds
        return scatter_image_rows(embeds, mask, self.get_image_features(pixel_values), images_per_sample, what="-200")

    # ---- forward / generate ----------------------------------------------------------------------------------
    @takes_cache
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        images_per_sample: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("pass input_ids or inputs_embeds")
            inputs_embeds = self.embed_inputs(input_ids, pixel_values, images_per_sample)
        kwargs.pop("return_dict", None)
        outputs = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                             **cache_output(cache), use_cache=use_cache, **kwargs)
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(outputs.last_hidden_state[:, keep])
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return CausalLMOutputWithPast(loss=loss, logits=logits, **cache_output(output_cache(outputs)),
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)

    def prepare_inputs_for_generation(self, *args: Any, is_first_iteration: bool | None = False, **kwargs: Any):
        """Images (``pixel_values``, ``images_per_sample``) go to the prefill step only."""
        inputs = super().prepare_inputs_for_generation(*args, is_first_iteration=is_first_iteration, **kwargs)
        if not is_first_iteration and kwargs.get("use_cache", True):
            for key in ("pixel_values", "images_per_sample"):
                inputs.pop(key, None)
        return inputs
