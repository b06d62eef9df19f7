"""Yi-VL (LLaVA-1.5 layout): transformers ``LlamaModel`` (the Yi LLM) + CLIP ViT-H/14-448 + ``mlp2x_gelu_Norm``.

State-dict keys equal upstream 01-ai/Yi-VL-6B/34B's (``model.embed_tokens``, ``model.layers.*``, ``model.norm``,
``lm_head``, ``model.vision_tower.vision_tower.vision_model.*``, ``model.mm_projector.{0,1,3,4}``). The template
reserves 1024 positions per image as runs of -200; ``embed_inputs`` writes each image's 1024 projected patch
features there (hidden state -2 of the ViT, CLS dropped), never looking -200 up::

    >>> import torch
    >>> from vlmref.models.yi_vl.config import TINY, YI_VL_6B, YiVLConfig
    >>> model = YiVLForCausalLM(YiVLConfig(**{**YI_VL_6B, **TINY, "vision_config": {**YI_VL_6B["vision_config"],
    ...                                       **TINY["vision_config"]}})).eval()
    >>> model.get_image_features(torch.zeros(1, 3, 448, 448))[0].shape
    torch.Size([1024, 64])

Upstream expands one -200 per image inside the model (``prepare_inputs_labels_for_multimodal``); vlmref's template
expands it at encode time, so the sequence the LLM sees is the same.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn
from transformers import GenerationMixin, LlamaModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings

from ..common import causal_lm_loss, scatter_image_rows
from ..kv_cache import cache_output, output_cache, takes_cache
from ..side_weights import WEIGHT_FILES, SideWeights, from_pretrained_with_sides, read_state_dict, weights_file
from .config import YiVLConfig, vision_tower_dir
from .vision import YiVLVisionTower, build_projector

VISION_PREFIX = "model.vision_tower.vision_tower."


def _init_yi_vl(model: PreTrainedModel, module: nn.Module) -> None:
    PreTrainedModel._init_weights(model, module)  # Linear/Embedding/LayerNorm/RMSNorm/rotary, as transformers does
    if isinstance(module, CLIPVisionEmbeddings):
        init.normal_(module.class_embedding, mean=0.0, std=module.embed_dim**-0.5)
        init.copy_(module.position_ids, torch.arange(module.num_positions).expand((1, -1)))


class YiVLPreTrainedModel(PreTrainedModel):
    config_class = YiVLConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer", "CLIPEncoderLayer"]
    _skip_keys_device_placement = ["cache", "past_key_values"]
    _supports_sdpa = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        _init_yi_vl(self, module)


class YiVLModel(LlamaModel):
    """``LlavaLlamaModel``: the Llama decoder plus ``vision_tower`` and ``mm_projector`` (upstream attribute names)."""

    config_class = YiVLConfig
    _no_split_modules = ["LlamaDecoderLayer", "CLIPEncoderLayer"]

    def __init__(self, config: YiVLConfig) -> None:
        super().__init__(config)
        vision = config.vision_config
        if getattr(vision, "_attn_implementation", None) is None:  # plain CLIP modules: no PreTrainedModel sets it
            vision._attn_implementation_internal = config._attn_implementation
        self.vision_tower = YiVLVisionTower(config.vision_config, config.mm_vision_select_layer,
                                            config.mm_vision_select_feature)
        self.mm_projector = build_projector(config.mm_hidden_size, config.hidden_size)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        _init_yi_vl(self, module)


class YiVLForCausalLM(YiVLPreTrainedModel, GenerationMixin):
    """Yi-VL-6B/34B with the vlmref model contract (``embed_inputs``, ``get_image_features``, ``generate``)."""

    image_span_margin = (0, 0)

    def __init__(self, config: YiVLConfig) -> None:
        super().__init__(config)
        self.model = YiVLModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.lm_head = new_embeddings

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, vision_tower: str = "auto", **kwargs):
        """transformers' ``from_pretrained``, then the ViT as upstream loads it: with ``vision_tower='auto'`` the
        ``vit/<name>`` folder (``mm_vision_tower``) wins over the main checkpoint's copy when it exists;
        ``'checkpoint'`` keeps the main checkpoint's ``model.vision_tower.vision_tower.*`` weights. The load report
        (``model.load_report``, ``output_loading_info=True``) counts the ViT keys loaded from ``vit/`` as loaded."""
        if vision_tower not in ("auto", "checkpoint"):
            raise ValueError(f"vision_tower must be 'auto' or 'checkpoint', got {vision_tower!r}")
        sides = []
        config = kwargs.get("config")
        tower = getattr(config, "mm_vision_tower", None) if config is not None else _config_field(
            pretrained_model_name_or_path, "mm_vision_tower")
        folder = vision_tower_dir(pretrained_model_name_or_path, tower)
        path = weights_file(folder) if vision_tower == "auto" and folder is not None else None
        if path is not None:
            sides.append(SideWeights(path, _vit_key, wins=True))
        return from_pretrained_with_sides(cls, super().from_pretrained, pretrained_model_name_or_path, sides,
                                          *args, **kwargs)

    # ---- images ----------------------------------------------------------------------------------------------
    def get_image_features(self, pixel_values: torch.Tensor, **kwargs: Any) -> list[torch.Tensor]:
        """One (1024, hidden) tensor per image: ViT hidden state -2 without CLS, through the projector."""
        if pixel_values.shape[0] == 0:
            return []
        features = self.model.mm_projector(self.model.vision_tower(pixel_values))
        return list(features.unbind(0))

    def embed_inputs(self, input_ids: torch.LongTensor, pixel_values: torch.Tensor | None = None,
                     images_per_sample: torch.Tensor | None = None, **extras: Any) -> torch.Tensor:
        """Token embeddings (B, L, H) with image features written at the -200 runs, image by image in order."""
        mask = input_ids == self.config.image_token_index
        safe_ids = input_ids.masked_fill(mask | (input_ids < 0), 0)
        embeds = self.model.embed_tokens(safe_ids)
        n_positions = int(mask.sum())
        if pixel_values is None or pixel_values.shape[0] == 0:
            if n_positions:
                raise ValueError(f"{n_positions} image positions (-200) in input_ids but no pixel_values")
            return embeds
        features = self.get_image_features(pixel_values)
        return scatter_image_rows(embeds, mask, features, images_per_sample, what="-200")

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
        outputs = self.model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **cache_output(cache),
            use_cache=use_cache,
            **kwargs,
        )
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(outputs.last_hidden_state[:, keep])
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, **cache_output(output_cache(outputs)),
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )

    def prepare_inputs_for_generation(self, *args: Any, is_first_iteration: bool | None = False, **kwargs: Any):
        """Images (``pixel_values``, ``images_per_sample``) go to the prefill step only."""
        inputs = super().prepare_inputs_for_generation(*args, is_first_iteration=is_first_iteration, **kwargs)
        if not is_first_iteration and kwargs.get("use_cache", True):
            for key in ("pixel_values", "images_per_sample"):
                inputs.pop(key, None)
        return inputs


# ---- the separate ViT folder ------------------------------------------------------------------------------------------
def _vit_key(key: str) -> str | None:
    """A ``vit/<name>`` checkpoint key (``vision_model.*``, or un-prefixed as transformers 5 saves a
    CLIPVisionModel) as the model's key; non-persistent buffers (``position_ids``) are skipped."""
    if key.endswith("position_ids"):
        return None
    return VISION_PREFIX + (key if key.startswith("vision_model.") else f"vision_model.{key}")


def _config_field(folder: Any, name: str) -> Any:
    path = os.path.join(str(folder), "config.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f).get(name)


def load_vision_tower(model: YiVLForCausalLM, folder: str | os.PathLike) -> list[str]:
    """Load Yi-VL's ``vit/<name>`` folder (a transformers ``CLIPVisionModel`` checkpoint: ``vision_model.*`` keys,
    or un-prefixed keys as transformers 5 saves them) into ``model.vision_tower.vision_tower``. Returns the
    checkpoint keys that were ignored (non-persistent buffers such as ``position_ids``)."""
    path = weights_file(folder)
    if path is None:
        raise FileNotFoundError(f"no {' or '.join(WEIGHT_FILES)} in {folder}")
    state = read_state_dict(path)
    target = model.model.vision_tower.vision_tower
    own = target.state_dict()
    mapped, ignored = {}, []
    for key, value in state.items():
        name = key if key.startswith("vision_model.") else f"vision_model.{key}"
        if name in own:
            mapped[name] = value
        else:
            ignored.append(key)
    missing = sorted(set(own) - set(mapped))
    if missing:
        raise KeyError(f"{path}: missing vision tower weights {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    target.load_state_dict(mapped, strict=True)
    return ignored
