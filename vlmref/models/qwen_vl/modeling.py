"""Qwen-VL-Chat in plain PyTorch: the Qwen-7B decoder (``transformer.*``, ``lm_head``) + ``transformer.visual``.

Every ``state_dict()`` key and shape is the upstream checkpoint's (golden/arch/qwen-vl-chat.json). Behaviour follows
upstream ``modeling_qwen.py``:

* block: ``h = x + c_proj(attn(ln_1(x)))``, ``out = h + mlp(ln_2(h))``; RMSNorm computed in float32; MLP
  ``c_proj(w1(x) * silu(w2(x)))`` (the SiLU is on ``w2``); ``c_attn`` has a bias, the other Linears none.
* rotary (GPT-NeoX half rotation, applied in float32) over ``kv_channels * rotary_pct`` dims, base 10000.
* dynamic NTK (``use_dynamic_ntk``): on an eval prefill of L tokens the rotary base becomes
  ``base * alpha ** (d / (d - 2))`` with ``alpha = max(2 ** ceil(log2(L / seq_length) + 1) - 1, 1)``; decode steps and
  training reuse the alpha of the last eval prefill (upstream caches it on the module). alpha is 1 for L <= 2048.
* logn attention (``use_logn_attn``, eval only): queries at position p (0-based) are scaled by
  ``log(p + 1) / log(seq_length)`` when ``p + 1 > seq_length``. Both change nothing up to ``seq_length`` = 2048 tokens.
* image features go to the 256 positions strictly between each ``<img>`` (151857) and ``</img>`` (151858).

Deviations (see the package docstring): images come as ``pixel_values`` from the collator (upstream decodes paths
from the ids and loads the files inside ``forward``); rotary and logn use ``position_ids`` (upstream uses the cache
positions, which differ only under left padding); attention is SDPA.

>>> from vlmref.models.qwen_vl import QWenVLForCausalLM, QWenVLConfig, QWEN_VL_CHAT, TINY  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..kv_cache import cache_output, takes_cache
from .config import QWenVLConfig
from .images import ImageEmbeddingMixin
from .vision import QWenVisionTransformer, Resampler


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return h.type_as(x) * self.weight


def ntk_alpha_for(length: int, seq_length: int) -> float:
    """Upstream's dynamic-NTK alpha for a prefill of ``length`` tokens (1 up to ``seq_length``, then 3, 7, 15, ...)."""
    context_value = math.log(length / seq_length, 2) + 1
    return max(2 ** math.ceil(context_value) - 1, 1)


def rotary_cos_sin(position_ids: torch.Tensor, dim: int, base: float, ntk_alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L, 1, dim) float32 cos and sin for integer positions (B, L)."""
    base = base * ntk_alpha ** (dim / (dim - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, device=position_ids.device).float() / dim))
    freqs = position_ids.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)[:, :, None, :]
    return emb.cos(), emb.sin()


def apply_rotary(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``cos.shape[-1]`` dims of t (B, L, H, D) in float32; the rest pass through."""
    rot = cos.shape[-1]
    x, rest = t[..., :rot].float(), t[..., rot:].float()
    x1, x2 = x.chunk(2, dim=-1)
    x = x * cos + torch.cat((-x2, x1), dim=-1) * sin
    return torch.cat((x, rest), dim=-1).type_as(t)


def logn_scale(position_ids: torch.Tensor, seq_length: int) -> torch.Tensor:
    """(B, L, 1, 1) float32 query scale: log(p + 1) / log(seq_length) where p + 1 > seq_length, else 1."""
    p = position_ids.float() + 1
    scale = torch.where(p > seq_length, torch.log(p) / math.log(seq_length), torch.ones_like(p))
    return scale[:, :, None, None]


class QWenAttention(nn.Module):
    def __init__(self, config: QWenVLConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.kv_channels
        self.hidden_size = config.hidden_size
        projection = config.kv_channels * config.num_attention_heads
        self.c_attn = nn.Linear(config.hidden_size, 3 * projection)
        self.c_proj = nn.Linear(config.hidden_size, projection, bias=not config.no_bias)
        self.dropout = config.attn_dropout_prob

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                logn: torch.Tensor | None, cache: Cache | None) -> torch.Tensor:
        b, length, _ = x.shape
        q, k, v = self.c_attn(x).split(self.hidden_size, dim=2)
        q, k, v = (t.view(b, length, self.num_heads, self.head_dim) for t in (q, k, v))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if logn is not None:
            q = q * logn.to(q.dtype)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, D)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        is_causal = mask is None and length > 1
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, is_causal=is_causal
        )
        return self.c_proj(out.transpose(1, 2).reshape(b, length, -1))


class QWenMLP(nn.Module):
    def __init__(self, config: QWenVLConfig) -> None:
        super().__init__()
        width = config.intermediate_size // 2
        self.w1 = nn.Linear(config.hidden_size, width, bias=not config.no_bias)
        self.w2 = nn.Linear(config.hidden_size, width, bias=not config.no_bias)
        self.c_proj = nn.Linear(width, config.hidden_size, bias=not config.no_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.w1(x) * F.silu(self.w2(x)))


class QWenBlock(GradientCheckpointingLayer):
    def __init__(self, config: QWenVLConfig, layer_idx: int) -> None:
        super().__init__()
        self.ln_1 = RMSNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.attn = QWenAttention(config, layer_idx)
        self.ln_2 = RMSNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.mlp = QWenMLP(config)

    def forward(self, hidden_states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                logn: torch.Tensor | None, cache: Cache | None = None) -> torch.Tensor:
        h = hidden_states + self.attn(self.ln_1(hidden_states), cos, sin, mask, logn, cache)
        return h + self.mlp(self.ln_2(h))


def attention_mask_4d(attention_mask: torch.Tensor | None, q_len: int, past_len: int, batch: int,
                      device: torch.device) -> torch.Tensor | None:
    """Boolean (B, 1, Q, K) mask: causal over cache positions AND the 2-D padding mask; None = plain causal.

    Rows with no visible key (left-padding queries) see every key, so SDPA stays finite; those outputs are unused.
    """
    if attention_mask is None or bool(attention_mask.all()):
        if q_len == 1 or past_len == 0:
            return None  # decode step sees the whole cache; prefill uses is_causal
        attention_mask = torch.ones(batch, past_len + q_len, dtype=torch.long, device=device)
    k_len = attention_mask.shape[-1]
    rows = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
    causal = torch.arange(k_len, device=device)[None, :] <= rows
    mask = causal[None, None] & attention_mask[:, None, None, :].to(device=device, dtype=torch.bool)
    return mask | ~mask.any(dim=-1, keepdim=True)


class QWenPreTrainedModel(PreTrainedModel):
    config_class = QWenVLConfig
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["QWenBlock", "VisualAttentionBlock", "Resampler"]
    _skip_keys_device_placement = ["cache", "past_key_values"]
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        if any(p.device.type == "meta" for p in module.parameters(recurse=False)):
            return  # no init work on meta tensors
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, std=std)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, RMSNorm)):
            init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)
            init.zeros_(module.out_proj.bias)
        elif isinstance(module, (Resampler, QWenVisionTransformer)):
            module.init_own_params()
        if isinstance(module, (QWenAttention, QWenMLP)):  # upstream: c_proj.weight std / sqrt(2 * layers)
            init.normal_(module.c_proj.weight, std=std / math.sqrt(2 * self.config.num_hidden_layers))


class QWenModel(QWenPreTrainedModel):
    """``transformer``: wte, h.N, ln_f and the visual encoder (image features are written by the LM head class)."""

    def __init__(self, config: QWenVLConfig) -> None:
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.drop = nn.Dropout(config.emb_dropout_prob)
        self.h = nn.ModuleList(QWenBlock(config, i) for i in range(config.num_hidden_layers))
        self.ln_f = RMSNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.visual = QWenVisionTransformer(config)
        self.ntk_alpha = 1.0  # upstream RotaryEmbedding._ntk_alpha_cached
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.wte = value

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: Cache | None = None) -> torch.Tensor:
        batch, q_len, _ = inputs_embeds.shape
        past_len = cache.get_seq_length() if cache is not None else 0
        device = inputs_embeds.device
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + q_len, device=device)[None].expand(batch, -1)
        if self.config.use_dynamic_ntk and past_len == 0 and not self.training:
            self.ntk_alpha = ntk_alpha_for(q_len, self.config.seq_length)
        cos, sin = rotary_cos_sin(position_ids, self.config.rotary_dim, self.config.rotary_emb_base, self.ntk_alpha)
        logn = None
        if self.config.use_logn_attn and not self.training and past_len + q_len > self.config.seq_length:
            logn = logn_scale(position_ids, self.config.seq_length)
        mask = attention_mask_4d(attention_mask, q_len, past_len, batch, device)
        hidden = inputs_embeds
        for block in self.h:
            hidden = block(hidden, cos, sin, mask, logn, cache=cache)
        return self.ln_f(hidden)


class QWenVLForCausalLM(ImageEmbeddingMixin, QWenPreTrainedModel, GenerationMixin):
    """Qwen-VL-Chat: ``transformer`` (decoder + visual) and an untied ``lm_head``.

    ``forward(input_ids, attention_mask, position_ids, cache, inputs_embeds, labels, use_cache,
    pixel_values, images_per_sample)`` -> ``CausalLMOutputWithPast``; ``pixel_values`` (N, 3, 448, 448) are the
    collator's, one per ``<img>...</img>`` span, in batch order.
    """

    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}  # only when config.tie_word_embeddings
    image_span_margin = (1, 1)  # <img> and </img> keep their token embeddings

    def __init__(self, config: QWenVLConfig) -> None:
        super().__init__(config)
        self.transformer = QWenModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.transformer.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.transformer.wte = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    @takes_cache
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        images_per_sample: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.transformer.gradient_checkpointing and self.training:
            use_cache = False
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        prefill = cache is None or cache.get_seq_length() == 0
        if inputs_embeds is None:
            if prefill:
                inputs_embeds = self.embed_inputs(input_ids, pixel_values, images_per_sample)
            else:  # decode step: image inputs were consumed by the prefill (upstream: no image work with a cache)
                inputs_embeds = self.transformer.drop(self.transformer.wte(input_ids))
        else:
            inputs_embeds = self.transformer.drop(inputs_embeds)
        if self.training and pixel_values is None:
            inputs_embeds = self.add_dummy_image(inputs_embeds)
        hidden = self.transformer(inputs_embeds, attention_mask, position_ids, cache if use_cache else None)
        logits = self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)  # generate() keeps 1
        loss = None
        if labels is not None:
            if logits_to_keep:
                raise ValueError("labels need the logits of every position; do not pass logits_to_keep with labels")
            # shift the labels, not the logits (no copy of the (B, L, vocab) tensor); mean over labels != -100
            labels = labels.to(logits.device)
            shift_labels = torch.cat([labels[:, 1:], labels.new_full((labels.shape[0], 1), -100)], dim=1)
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), shift_labels.view(-1), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, **cache_output(cache if use_cache else None))

    @takes_cache
    def prepare_inputs_for_generation(self, input_ids, cache=None, attention_mask=None, inputs_embeds=None,
                                      is_first_iteration=False, **kwargs):
        images_per_sample = kwargs.pop("images_per_sample", None)
        inputs = super().prepare_inputs_for_generation(
            input_ids, **cache_output(cache), attention_mask=attention_mask, inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration, **kwargs,
        )
        first = is_first_iteration or cache is None or cache.get_seq_length() == 0
        if first:
            inputs["images_per_sample"] = images_per_sample
        else:
            inputs.pop("pixel_values", None)
        return inputs
