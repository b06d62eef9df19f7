"""LLaVA-NeXT on transformers' native ``LlavaNextForConditionalGeneration`` (CLIP-L/336 + mlp2x + Mistral/Llama/Qwen2).

The vlmref model contract on top of it: images arrive as ``pixel_values`` (N, max_patches, 3, 336, 336) + ``image_sizes``
(N, 2) from ``vlmref.datasets.processors.LlavaNextImageProcessor``, the template has already expanded every ``<image>``
into the anyres count of ``<image>`` ids, and ``embed_inputs`` writes one image's feature rows (base 24x24 view, then
the unpadded grid with one ``image_newline`` per row, transformers' ``pack_image_features`` order) onto them::

    >>> import torch
    >>> from vlmref.models.arch import get_arch
    >>> spec = get_arch("llava1d6-mistral-7b-instruct")
    >>> model = spec.model_class(spec.build_config(tiny=True)).eval()
    >>> model(input_ids=torch.tensor([[1, 330, 331]])).logits.shape
    torch.Size([1, 3, 32064])

Deviations from transformers' class: ``forward`` never looks up the ``<image>`` id in the embedding table (the
llama3 id 128256 is outside its 128256-row vocabulary), checks image rows against ``images_per_sample``, and returns
``CausalLMOutputWithPast``; ``from_pretrained`` also reads original (lmms-lab) LLaVA-NeXT checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import LlavaNextForConditionalGeneration, PreTrainedConfig
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..common import causal_lm_loss, scatter_image_rows
from ..kv_cache import cache_output, output_cache, takes_cache
from .config import LlavaNextConfig, is_original_layout
from .keys import ORIGINAL_KEY_MAPPING

_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")


def _register_checkpoint_names(class_name: str) -> None:
    """transformers skips its checkpoint renaming for classes defined outside transformers unless their name is
    registered: give ours the ``llava_next`` mapping (llava-hf names -> transformers 5 module names)."""
    from transformers.conversion_mapping import (
        get_checkpoint_conversion_mapping,
        register_checkpoint_conversion_mapping,
    )

    register_checkpoint_conversion_mapping(class_name, get_checkpoint_conversion_mapping("llava_next"), overwrite=True)


class LlavaNextForCausalLM(LlavaNextForConditionalGeneration):
    """``LlavaNextForConditionalGeneration`` with the vlmref contract (see the module docstring).

    State-dict keys are transformers 5's (``model.language_model.*``, ``model.vision_tower.*``, ``lm_head``);
    ``save_pretrained`` writes transformers' checkpoint names and ``vlmref.models.llava_next.keys`` maps the
    upstream llava-hf and lmms-lab names onto them.
    """

    config_class = LlavaNextConfig
    _no_split_modules = ["LlamaDecoderLayer", "MistralDecoderLayer", "Qwen2DecoderLayer", "CLIPEncoderLayer"]
    supports_gradient_checkpointing = True
    image_span_margin = (0, 0)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, key_mapping: dict[str, str] | None = None,
                        **kwargs):
        """transformers' ``from_pretrained``; an original LLaVA-NeXT checkpoint (lmms-lab config.json with
        ``mm_*`` fields, ``model.mm_projector.*`` keys) gets ``ORIGINAL_KEY_MAPPING`` and a converted config."""
        if key_mapping is None and pretrained_model_name_or_path is not None:
            hub = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
            try:
                raw, _ = PreTrainedConfig.get_config_dict(pretrained_model_name_or_path, **hub)
            except OSError:
                raw = {}
            if is_original_layout(raw):
                key_mapping = ORIGINAL_KEY_MAPPING
        return super().from_pretrained(pretrained_model_name_or_path, *args, key_mapping=key_mapping, **kwargs)

    # ---- images ----------------------------------------------------------------------------------------------
    def get_image_features(self, pixel_values: torch.Tensor, image_sizes: torch.Tensor | None = None,
                           **kwargs: Any) -> list[torch.Tensor]:
        """One (n_tokens_i, hidden) tensor per image, rows in LLM order: 576 base-view rows, then the unpadded
        anyres grid row by row, each row followed by ``image_newline``. ``image_sizes`` (N, 2) = (height, width)."""
        if image_sizes is None:
            raise ValueError("LLaVA-NeXT needs image_sizes (N, 2) = (height, width) with pixel_values")
        if pixel_values.shape[0] == 0:
            return []
        out = self.model.get_image_features(pixel_values=pixel_values, image_sizes=image_sizes, return_dict=True)
        return list(out.pooler_output)

    def embed_inputs(self, input_ids: torch.LongTensor, pixel_values: torch.Tensor | None = None,
                     images_per_sample: torch.Tensor | None = None, image_sizes: torch.Tensor | None = None,
                     **extras: Any) -> torch.Tensor:
        """Token embeddings (B, L, H) with image feature rows written, in order, at the ``<image>`` id positions.

        ``<image>`` ids and negative ids are never looked up in the embedding table."""
        mask = input_ids == self.config.image_token_id
        safe_ids = input_ids.masked_fill(mask | (input_ids < 0), 0)
        embeds = self.get_input_embeddings()(safe_ids)
        n_positions = int(mask.sum())
        if pixel_values is None or pixel_values.shape[0] == 0:
            if n_positions:
                raise ValueError(f"{n_positions} <image> positions in input_ids but no pixel_values")
            return embeds
        features = self.get_image_features(pixel_values, image_sizes)
        return scatter_image_rows(embeds, mask, features, images_per_sample, what="<image> ids")

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
        image_sizes: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("pass input_ids or inputs_embeds")
            inputs_embeds = self.embed_inputs(input_ids, pixel_values, images_per_sample, image_sizes=image_sizes)
        kwargs.pop("return_dict", None)
        outputs = self.model.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **cache_output(cache),
            use_cache=use_cache,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, keep])
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, **cache_output(output_cache(outputs)),
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )

    def prepare_inputs_for_generation(self, *args: Any, is_first_iteration: bool | None = False, **kwargs: Any):
        """Images (``pixel_values``, ``image_sizes``, ``images_per_sample``) go to the prefill step only."""
        inputs = super().prepare_inputs_for_generation(*args, is_first_iteration=is_first_iteration, **kwargs)
        if not is_first_iteration and kwargs.get("use_cache", True):
            for key in ("pixel_values", "image_sizes", "images_per_sample"):
                inputs.pop(key, None)
        return inputs


_register_checkpoint_names(LlavaNextForCausalLM.__name__)
