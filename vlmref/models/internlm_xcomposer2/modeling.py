"""InternLM-XComposer2-7B / IXC-2.5-7B: vision tower + projector + InternLM2 with PLoRA, as a transformers model.

State-dict keys equal the released checkpoints': ``model.*`` (decoder), ``output.weight`` (untied head), ``vit.*``
(CLIP), ``vision_proj.{0,2}.*`` and, for IXC-2.5, ``plora_glb_GN`` / ``plora_sub_GN``.

Inputs follow the vlmref templates and collator: ``input_ids`` hold -200 at image positions (never looked up),
``im_mask`` is True there, ``pixel_values`` are the collator's tensors (XComposer2: (N, 3, 224, 224); IXC-2.5: a list
of (3, H, W), H/W multiples of 560) and ``images_per_sample`` splits them per row. Image features fill the im_mask
positions in order; PLoRA acts on exactly those positions. ``task='web'|'write'`` switches on IXC-2.5's task adapters.

>>> import torch
>>> from .config import IXC2_7B, TINY, InternLMXComposer2Config
>>> model = InternLMXComposer2ForCausalLM(InternLMXComposer2Config(**{**IXC2_7B, **TINY})).eval()
>>> ids = torch.tensor([[1, 400, 401]])
>>> tuple(model(input_ids=ids).logits.shape)
(1, 3, 92544)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings

from ..common import scatter_image_rows
from ..kv_cache import cache_output, takes_cache
from ..side_weights import SideWeights, from_pretrained_with_sides, weights_file
from .config import IMAGE_TOKEN_INDEX, InternLMXComposer2Config, vision_tower_folder
from .internlm2 import InternLM2Model
from .plora import PLoRA
from .vision import CLIPVisionTower, build_vision_projector, hd_layout, hd_views


class InternLMXComposer2PreTrainedModel(PreTrainedModel):
    config_class = InternLMXComposer2Config
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["InternLM2DecoderLayer", "CLIPEncoderLayer"]
    _skip_keys_device_placement = ["cache", "past_key_values"]
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        """transformers' defaults (normal Linear/Embedding, unit norms), plus: CLIP class embedding and position ids,
        zero PLoRA/task ``B`` matrices (a fresh adapter is a no-op), zero ``plora_*_GN`` (upstream ``torch.zeros``).
        Meta tensors are skipped (full-size builds on the meta device do no init work)."""
        if any(p.is_meta for p in module.parameters(recurse=False)):
            return
        super()._init_weights(module)
        if isinstance(module, CLIPVisionEmbeddings):
            init.normal_(module.class_embedding, std=module.embed_dim**-0.5)
            init.copy_(module.position_ids, torch.arange(module.num_positions).expand((1, -1)))
        elif isinstance(module, PLoRA):
            init.zeros_(module.Plora_B.weight)
            for name in module.task_names:
                init.zeros_(getattr(module, f"lora_{name}_B").weight)
        elif isinstance(module, InternLMXComposer2ForCausalLM) and module.config.image_layout == "hd":
            init.zeros_(module.plora_glb_GN)
            init.zeros_(module.plora_sub_GN)


class InternLMXComposer2ForCausalLM(InternLMXComposer2PreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"output.weight": "model.tok_embeddings.weight"}  # only if tie_word_embeddings (False)
    image_span_margin = (0, 0)

    def __init__(self, config: InternLMXComposer2Config) -> None:
        super().__init__(config)
        self.model = InternLM2Model(config)
        self.output = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.vit = CLIPVisionTower(config.vision_config)
        self.vision_proj = build_vision_projector(config.projector_in, config.hidden_size)
        if config.image_layout == "hd":
            self.plora_glb_GN = nn.Parameter(torch.zeros(1, 1, config.projector_in))
            self.plora_sub_GN = nn.Parameter(torch.zeros(1, 1, 1, config.projector_in))
        self.post_init()

    # missing from a checkpoint, these adapter matrices are zero-initialised (the adapter is a no-op) and reported
    zero_init_missing = (r"\.Plora_B\.weight$", r"\.lora_[a-z]+_B\.weight$")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """transformers' ``from_pretrained``; the CLIP tower's weights come from the CLIP folder
        (``vision_tower_folder``) when the main checkpoint lacks them; missing PLoRA / task-adapter ``B`` matrices
        are zeroed. ``model.load_report`` (and ``output_loading_info=True``) says what came from where."""
        config = kwargs.get("config")
        if config is not None:
            fields = {"vision_tower": config.vision_tower, "image_layout": config.image_layout}
        else:
            file = Path(str(pretrained_model_name_or_path)) / "config.json"
            fields = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
        # not required: a saved model (merged, full fine-tune) has the tower in its own weights and vision_config
        folder = vision_tower_folder(pretrained_model_name_or_path, fields, required=False)
        path = weights_file(folder) if folder is not None else None
        sides = [SideWeights(path, _tower_key)] if path is not None else []
        return from_pretrained_with_sides(cls, super().from_pretrained, pretrained_model_name_or_path, sides, *args,
                                          zero_missing=cls.zero_init_missing, **kwargs)

    # ---- embeddings ---------------------------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.tok_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.tok_embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.output

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.output = value

    def get_decoder(self) -> InternLM2Model:
        return self.model

    # ---- images -------------------------------------------------------------------------------------------------
    def get_image_features(self, pixel_values: Any, **kwargs: Any) -> list[torch.Tensor]:
        """One (n_positions_i, hidden) tensor per image, in batch order (256 rows, or the HD count per image)."""
        if self.config.image_layout == "fixed":
            if isinstance(pixel_values, (list, tuple)):
                pixel_values = torch.stack([p.reshape(p.shape[-3:]) for p in pixel_values])
            feats = self.vision_proj(self.vit(pixel_values))
            return list(feats.unbind(0))
        images = list(pixel_values) if isinstance(pixel_values, (list, tuple)) else list(pixel_values.unbind(0))
        tile, side = self.config.vision_config["image_size"], self.config.patch_grid
        views, grids = [], []
        for image in images:
            v, rows, cols = hd_views(image.to(self.vit.dtype), tile)
            views.append(v)
            grids.append((rows, cols))
        features = self.vit(torch.cat(views, dim=0))  # all views of all images in one pass, as upstream
        out, start = [], 0
        for rows, cols in grids:
            n = 1 + rows * cols
            layout = hd_layout(features[start : start + n], rows, cols, side, self.plora_glb_GN, self.plora_sub_GN)
            out.append(self.vision_proj(layout))
            start += n
        return out

    def embed_inputs(self, input_ids: torch.Tensor, pixel_values: Any = None,
                     images_per_sample: torch.Tensor | None = None, im_mask: torch.Tensor | None = None,
                     **extras: Any) -> torch.Tensor:
        """Token embeddings, with image features written at the ``im_mask`` positions (row by row, image by image)."""
        mask = (input_ids == IMAGE_TOKEN_INDEX) if im_mask is None else im_mask.to(torch.bool)
        mask = mask | (input_ids < 0)
        embeds = self.model.tok_embeddings(input_ids.masked_fill(mask, 0))  # -200 is never looked up
        if not bool(mask.any()):
            return embeds
        if pixel_values is None:
            raise ValueError("input has image positions (im_mask / -200) but no pixel_values")
        feats = self.get_image_features(pixel_values)
        return scatter_image_rows(embeds, mask, feats, images_per_sample, what="im_mask")

    # ---- forward ------------------------------------------------------------------------------------------------
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
        pixel_values: Any = None,
        images_per_sample: torch.Tensor | None = None,
        im_mask: torch.Tensor | None = None,
        hd_num: Any = None,
        task: str | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """``hd_num`` is accepted and unused (the tiling is already in the pixel_values' shape). ``logits_to_keep``
        (transformers convention; ``generate`` passes 1): logits for the last n positions only (0 = all)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(input_ids, pixel_values, images_per_sample, im_mask)
            if im_mask is None:
                im_mask = input_ids == IMAGE_TOKEN_INDEX
        if im_mask is None:
            im_mask = torch.zeros(inputs_embeds.shape[:2], dtype=torch.bool, device=inputs_embeds.device)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.model.training and any(getattr(m, "gradient_checkpointing", False) for m in self.model.layers):
            use_cache = False
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        hidden = self.model(inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                            cache=cache if use_cache else None, im_mask=im_mask.to(torch.bool),
                            task=task)
        if isinstance(logits_to_keep, int):
            hidden = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        else:
            hidden = hidden[:, logits_to_keep]
        logits = self.output(hidden).float()  # upstream returns float32 logits
        loss = None
        if labels is not None:
            if logits.shape[1] != labels.shape[1]:
                raise ValueError("labels need the logits of every position (logits_to_keep=0)")
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                   labels[:, 1:].reshape(-1).to(logits.device), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, **cache_output(cache if use_cache else None))

    # ---- generation ---------------------------------------------------------------------------------------------
    @takes_cache
    def prepare_inputs_for_generation(self, input_ids, cache=None, attention_mask=None, inputs_embeds=None,
                                      is_first_iteration=False, **kwargs):
        """Images (and the whole im_mask) on the prefill step only; later steps get the new tokens' im_mask (False)."""
        im_mask = kwargs.pop("im_mask", None)
        image_kwargs = {k: kwargs.pop(k, None) for k in ("pixel_values", "images_per_sample")}
        inputs = super().prepare_inputs_for_generation(input_ids, **cache_output(cache),
                                                       attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                                       is_first_iteration=is_first_iteration, **kwargs)
        prefill = cache is None or cache.get_seq_length() == 0
        if prefill:
            inputs.update({k: v for k, v in image_kwargs.items() if v is not None})
        if im_mask is not None:
            current = inputs["input_ids"] if inputs.get("input_ids") is not None else inputs["inputs_embeds"]
            inputs["im_mask"] = im_mask[:, -current.shape[1]:]
        return inputs

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        model_kwargs = super()._update_model_kwargs_for_generation(
            outputs, model_kwargs, is_encoder_decoder=is_encoder_decoder, num_new_tokens=num_new_tokens)
        if (im_mask := model_kwargs.get("im_mask")) is not None:
            model_kwargs["im_mask"] = torch.cat([im_mask, im_mask.new_zeros((im_mask.shape[0], num_new_tokens))], -1)
        return model_kwargs


def _tower_key(key: str) -> str | None:
    """A CLIP folder key (``vision_model.*`` as CLIPVisionModel saves it, or un-prefixed) as the model's ``vit.*``
    key; the non-persistent ``position_ids`` buffer is skipped (``post_layernorm`` has no place and is ignored)."""
    if key.endswith("position_ids"):
        return None
    return "vit.vision_tower." + (key if key.startswith("vision_model.") else f"vision_model.{key}")
