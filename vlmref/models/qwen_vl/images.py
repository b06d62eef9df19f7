"""Where Qwen-VL's image features go: the 256 positions strictly between each ``<img>`` and ``</img>`` id.

The template writes ``<img>`` + 256 ids (the path's bytes, then ``<imgpad>``) + ``</img>`` = 258 positions per image
(``image_spans`` entries of length 258, hence ``image_span_margin = (1, 1)``). Upstream's ``QWenModel.forward`` finds
the pairs with ``torch.where`` (row-major order), decodes the path from the ids between them, loads and encodes the
files, and overwrites ``hidden_states[i][a + 1 : b]``. vlmref does the same overwrite with the collator's
``pixel_values`` (one image per span, in batch order) instead of reading files inside ``forward``.

>>> import torch
>>> ids = torch.tensor([[5, 151857] + [151859] * 256 + [151858, 7]])
>>> find_image_spans(ids, 151857, 256)
[(0, 1, 258)]
"""

from __future__ import annotations

import torch


class ImageSpanError(ValueError):
    """``<img>``/``</img>`` ids that do not pair up into 256-position spans, or images that do not match them."""


def find_image_spans(input_ids: torch.Tensor, image_start_id: int, n_queries: int) -> list[tuple[int, int, int]]:
    """(row, position of <img>, position of </img>) per image, row-major; checks pairing and the 256-id gap."""
    starts = (input_ids == image_start_id).nonzero().tolist()
    ends = (input_ids == image_start_id + 1).nonzero().tolist()
    if len(starts) != len(ends):
        raise ImageSpanError(f"{len(starts)} <img> id(s) ({image_start_id}) but {len(ends)} </img> id(s)")
    spans: list[tuple[int, int, int]] = []
    for (row, a), (row_end, b) in zip(starts, ends, strict=True):
        if row != row_end or b - a - 1 != n_queries or (spans and spans[-1][0] == row and a <= spans[-1][2]):
            raise ImageSpanError(
                f"row {row}: <img> at {a} and </img> at {b} (row {row_end}) do not enclose exactly {n_queries} "
                "positions; a span cut by truncation or a nested/unclosed <img> tag"
            )
        spans.append((row, a, b))
    return spans


class ImageEmbeddingMixin:
    """``get_image_features`` / ``embed_inputs`` / the training-time dummy image, for ``QWenVLForCausalLM``."""

    def get_image_features(self, pixel_values: torch.Tensor, **_: object) -> list[torch.Tensor]:
        """One (256, hidden) tensor per image of ``pixel_values`` (N, 3, 448, 448), in order."""
        if pixel_values.shape[0] == 0:
            return []
        return list(self.transformer.visual(pixel_values).unbind(0))

    def embed_inputs(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None,
                     images_per_sample: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        """Token embeddings (after the embedding dropout, as upstream) with image features over each span's 256
        inner positions. Raises ``ImageSpanError`` when spans and images disagree (count, per-row count, shape)."""
        config = self.config
        embeds = self.transformer.drop(self.transformer.wte(input_ids))
        spans = find_image_spans(input_ids, config.image_start_id, config.n_queries)
        n_images = 0 if pixel_values is None else int(pixel_values.shape[0])
        if not spans and n_images == 0:
            return embeds
        if pixel_values is None:
            raise ImageSpanError(
                f"{len(spans)} <img>...</img> span(s) but no pixel_values: vlmref takes images from the collator "
                "(DataCollator -> pixel_values), it does not load the paths written in the ids as upstream does"
            )
        if len(spans) != n_images:
            raise ImageSpanError(f"{len(spans)} <img>...</img> span(s) in input_ids but {n_images} image(s)")
        if images_per_sample is not None:
            per_row = torch.bincount(torch.tensor([r for r, _, _ in spans], dtype=torch.long), minlength=len(input_ids))
            if per_row.tolist() != [int(n) for n in images_per_sample]:
                raise ImageSpanError(f"spans per row {per_row.tolist()} != images_per_sample {images_per_sample.tolist()}")
        features = torch.stack(self.get_image_features(pixel_values)).to(embeds.dtype)
        mask = torch.zeros(input_ids.shape, dtype=torch.bool, device=embeds.device)
        for row, a, b in spans:
            mask[row, a + 1 : b] = True
        return embeds.masked_scatter(mask[..., None], features.to(embeds.device))

    def add_dummy_image(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Training batch without images: upstream runs a zero 224x224 image through the visual encoder and adds
        ``features.mean() * 0`` so every visual parameter joins the graph (DDP / ZeRO see the same parameter set on
        every rank). vlmref does it only when some visual parameter is trainable (the result is identical)."""
        visual = self.transformer.visual
        if not any(p.requires_grad for p in visual.parameters()):
            return inputs_embeds
        dummy = torch.zeros(1, 3, 224, 224, dtype=visual.conv1.weight.dtype, device=visual.conv1.weight.device)
        return inputs_embeds + visual(dummy).mean().to(inputs_embeds.device, inputs_embeds.dtype) * 0
