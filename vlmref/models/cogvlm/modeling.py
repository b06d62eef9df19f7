"""CogVLM-17B chat (THUDM/cogvlm-chat-hf) as plain PyTorch modules with the upstream state-dict keys.

``CogVLMForCausalLM`` = ``model`` (``embed_tokens``, 32 visual-expert ``layers``, ``norm``, ``vision``) + ``lm_head``.
Image features replace the ``token_type_ids == 1`` positions the template reserved right after BOS (boi, 1225
patches, eoi), in batch order, exactly as upstream's ``inputs_embeds.index_put([token_type_ids == 1], features)``.

>>> import torch
>>> from vlmref.models.cogvlm.config import CogVLMConfig, TINY_COGVLM
>>> model = CogVLMForCausalLM(CogVLMConfig(**TINY_COGVLM)).eval()
>>> ids = torch.tensor([[1] + [0] * 1227 + [300, 301]])
>>> tt = torch.tensor([[0] + [1] * 1227 + [0, 0]])
>>> model(ids, token_type_ids=tt, pixel_values=torch.zeros(1, 3, 490, 490)).logits.shape
torch.Size([1, 1230, 32000])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from ..kv_cache import cache_output, output_cache, takes_cache
from .config import LANGUAGE_TOKEN_TYPE, VISION_TOKEN_TYPE, CogVLMConfig
from .experts import (
    CogVLMDecoderLayer,
    CogVLMRMSNorm,
    CogVLMRotaryEmbedding,
    build_position_ids,
    get_expert_mask,
    rope_inv_freq,
    rotary_cos_sin,
)
from .vision import EVA2CLIPModel, EVA2CLIPPatchEmbedding


class CogVLMPreTrainedModel(PreTrainedModel):
    config_class = CogVLMConfig
    config: CogVLMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["CogVLMDecoderLayer", "EVA2CLIPTransformerLayer"]
    _skip_keys_device_placement = ["cache", "past_key_values"]
    _supports_sdpa = True
    # upstream's persistent RoPE buffer: a checkpoint without it is fine (the values are recomputed anyway)
    _keys_to_ignore_on_load_missing = [r"rotary_emb\.inv_freq"]

    def _init_weights(self, module: nn.Module) -> None:
        """Linear/Conv/Embedding ~ N(0, initializer_range), norms 1/0 (transformers' default); cls/boi/eoi zeros."""
        super()._init_weights(module)
        if isinstance(module, CogVLMRotaryEmbedding):
            init.copy_(module.inv_freq, rope_inv_freq(module.head_dim, module.inv_freq.device))
        elif isinstance(module, EVA2CLIPPatchEmbedding):
            init.zeros_(module.cls_embedding)
        elif isinstance(module, EVA2CLIPModel):
            init.zeros_(module.boi)
            init.zeros_(module.eoi)


def _causal_mask(attention_mask: torch.Tensor | None, q_len: int, past_len: int, dtype, device) -> torch.Tensor | None:
    """Additive (B|1, 1, q, past + q) mask: causal and padding; ``None`` where SDPA's own causal flag is exact."""
    if attention_mask is not None and bool(attention_mask.all()):
        attention_mask = None
    if attention_mask is None and (past_len == 0 or q_len == 1):
        return None  # no padding: is_causal (prefill) or nothing to mask (one-token step)
    kv_len = past_len + q_len
    allowed = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(diagonal=past_len)[None, None]
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, -kv_len:].bool()
    # finfo.min, not -inf: a fully masked (left-padding) query row then attends uniformly instead of producing NaN
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


class CogVLMModel(CogVLMPreTrainedModel):
    def __init__(self, config: CogVLMConfig) -> None:
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([CogVLMDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = CogVLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.vision = EVA2CLIPModel(config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs: Any) -> list[torch.Tensor]:
        """One (1227, hidden) tensor per image: boi, the 35 x 35 adapted patch features, eoi."""
        return list(self.vision(pixel_values).unbind(0))

    def embed_inputs(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        images_per_sample: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Token embeddings with each row's image features written over its ``token_type_ids == 1`` positions."""
        ids = input_ids.clamp(min=0)  # placeholder ids are never looked up unless they are valid rows
        embeds = self.embed_tokens(ids)
        image_pos = (token_type_ids == VISION_TOKEN_TYPE) if token_type_ids is not None else None
        if pixel_values is None:
            if image_pos is not None and bool(image_pos.any()):
                raise ValueError("token_type_ids mark image positions but no pixel_values were given")
            return embeds
        if image_pos is None:
            raise ValueError("CogVLM needs token_type_ids (1 on the template's image positions) with pixel_values")
        features = self.get_image_features(pixel_values)
        per_row = _split_per_row(len(features), input_ids.shape[0], images_per_sample)
        start = 0
        for b, n in enumerate(per_row):
            need = sum(f.shape[0] for f in features[start : start + n])
            have = int(image_pos[b].sum())
            if have != need:
                raise ValueError(
                    f"batch[{b}]: {have} positions have token_type_ids 1 but its {n} image(s) give {need} features "
                    f"({self.config.vision_tokens} per image)"
                )
            start += n
        if not features:
            return embeds
        flat = torch.cat(features).to(embeds.dtype)
        return embeds.masked_scatter(image_pos[..., None], flat)

    @takes_cache
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        images_per_sample: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.gradient_checkpointing and self.training:
            use_cache = False
        if use_cache and cache is None:
            cache = DynamicCache()
        past_len = cache.get_seq_length() if cache is not None else 0
        reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
        if token_type_ids is None:
            token_type_ids = torch.full(reference.shape, LANGUAGE_TOKEN_TYPE, dtype=torch.long, device=reference.device)
        if inputs_embeds is None:
            if past_len and pixel_values is not None:
                pixel_values = None  # images are consumed by the prefill step only
            inputs_embeds = self.embed_inputs(input_ids, pixel_values, images_per_sample, token_type_ids)
        elif pixel_values is not None:
            raise ValueError("pass pixel_values with input_ids, or inputs_embeds from embed_inputs, not both")
        if position_ids is None:
            if past_len:  # upstream's fallback outside generate(): consecutive ids after the cache
                position_ids = torch.arange(past_len, past_len + reference.shape[1], device=reference.device)[None]
            else:
                position_ids = build_position_ids(token_type_ids, attention_mask)
        hidden_states = inputs_embeds
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        cos, sin = rotary_cos_sin(position_ids, head_dim, hidden_states.dtype)
        mask = _causal_mask(attention_mask, hidden_states.shape[1], past_len, hidden_states.dtype, hidden_states.device)
        vision_mask = get_expert_mask(token_type_ids)
        for layer in self.layers:
            hidden_states = layer(
                hidden_states, vision_mask=vision_mask, cos=cos, sin=sin, attention_mask=mask,
                cache=cache if use_cache else None, use_cache=use_cache,
            )
        hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, **cache_output(cache if use_cache else None))


def _split_per_row(n_images: int, batch: int, images_per_sample: torch.Tensor | None) -> list[int]:
    if images_per_sample is None:
        if n_images != batch:
            raise ValueError(f"{n_images} images for {batch} rows: pass images_per_sample")
        return [1] * batch
    per_row = [int(n) for n in images_per_sample.tolist()]
    if len(per_row) != batch or sum(per_row) != n_images:
        raise ValueError(f"images_per_sample {per_row} does not match {n_images} images and {batch} rows")
    return per_row


class CogVLMForCausalLM(CogVLMPreTrainedModel, GenerationMixin):
    """The chat model: ``model`` + ``lm_head`` (not tied). See the module docstring."""

    image_span_margin = (0, 0)  # every reserved position (boi, patches, eoi) is an image feature

    def __init__(self, config: CogVLMConfig) -> None:
        super().__init__(config)
        self.model = CogVLMModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs: Any) -> list[torch.Tensor]:
        return self.model.get_image_features(pixel_values, **kwargs)

    def embed_inputs(self, input_ids, pixel_values=None, images_per_sample=None, **extras: Any) -> torch.Tensor:
        return self.model.embed_inputs(input_ids, pixel_values, images_per_sample, extras.get("token_type_ids"))

    @takes_cache
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        images_per_sample: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            cache=cache, inputs_embeds=inputs_embeds, use_cache=use_cache,
            pixel_values=pixel_values, images_per_sample=images_per_sample, token_type_ids=token_type_ids,
        )
        logits = self.lm_head(out.last_hidden_state).float()  # upstream up-casts the logits
        loss = None
        if labels is not None:
            shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
            shift_labels = labels[:, 1:].reshape(-1).to(logits.device)
            loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, **cache_output(output_cache(out)))

    # ---- generation -----------------------------------------------------------------------------------------------
    def _prepare_attention_mask_for_generation(self, inputs_tensor, generation_config, model_kwargs):
        """All ones, as upstream: the image positions hold the pad id, so padding cannot be inferred from ids."""
        return torch.ones(inputs_tensor.shape[:2], dtype=torch.long, device=inputs_tensor.device)

    @takes_cache
    def prepare_inputs_for_generation(
        self,
        input_ids: torch.Tensor,
        cache=None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        images_per_sample: torch.Tensor | None = None,
        is_first_iteration: bool | None = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        if token_type_ids is None:
            token_type_ids = torch.full_like(input_ids, LANGUAGE_TOKEN_TYPE)
        # upstream rebuilds them over the whole sequence at every step (one position per image run); generate()
        # also passes its own arange positions (transformers >= 5.x), which would count every vision position
        position_ids = build_position_ids(token_type_ids, attention_mask)
        inputs = super().prepare_inputs_for_generation(
            input_ids, **cache_output(cache), attention_mask=attention_mask, inputs_embeds=inputs_embeds,
            token_type_ids=token_type_ids, position_ids=position_ids, is_first_iteration=is_first_iteration, **kwargs,
        )
        if pixel_values is not None and (is_first_iteration or not kwargs.get("use_cache", True)):
            inputs["pixel_values"] = pixel_values
            inputs["images_per_sample"] = images_per_sample
        return inputs

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        model_kwargs = super()._update_model_kwargs_for_generation(
            outputs, model_kwargs, is_encoder_decoder=is_encoder_decoder, num_new_tokens=num_new_tokens
        )
        token_type_ids = model_kwargs.get("token_type_ids")
        if token_type_ids is not None:  # generated tokens are text
            token_type_ids = token_type_ids.clone()
            token_type_ids[:, -num_new_tokens:] = LANGUAGE_TOKEN_TYPE
            model_kwargs["token_type_ids"] = token_type_ids
        return model_kwargs
