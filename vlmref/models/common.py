"""Pieces the families' models share: writing image feature rows at the template's placeholder positions
(``embed_inputs``) and the shifted causal-LM loss.

>>> embeds = scatter_image_rows(embeds, input_ids == image_id, features, images_per_sample)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits[:, t] against labels[:, t + 1] over labels != -100 (float32)."""
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    return F.cross_entropy(shift_logits, labels[:, 1:].reshape(-1).to(logits.device), ignore_index=-100)


def scatter_image_rows(
    embeds: torch.Tensor,
    mask: torch.Tensor,
    features: Sequence[torch.Tensor],
    images_per_sample: torch.Tensor | None = None,
    what: str = "",
) -> torch.Tensor:
    """``embeds`` with the rows of ``features`` (one (n_i, H) tensor per image, in batch order) written, in order, at
    the True positions of ``mask`` (B, L). With ``images_per_sample`` each batch row is checked on its own; the total
    always is. Every mismatch raises ``ValueError`` naming the row and the counts."""
    lengths = [int(f.shape[0]) for f in features]
    kind = f"image positions ({what})" if what else "image positions"
    if images_per_sample is not None:
        per_row = [int(n) for n in images_per_sample.tolist()]
        if len(per_row) != mask.shape[0] or sum(per_row) != len(features):
            raise ValueError(f"images_per_sample {per_row} does not match {len(features)} images for a batch of "
                             f"{mask.shape[0]}")
        start = 0
        for row, n in enumerate(per_row):
            need, have = sum(lengths[start : start + n]), int(mask[row].sum())
            if need != have:
                raise ValueError(f"batch[{row}]: {have} {kind} but its {n} image(s) give {need} feature rows")
            start += n
    n_positions = int(mask.sum())
    if sum(lengths) != n_positions:
        raise ValueError(f"{n_positions} {kind} but the images give {sum(lengths)} feature rows")
    if not features:
        return embeds
    rows = torch.cat(list(features)).to(embeds.dtype)
    return embeds.masked_scatter(mask.unsqueeze(-1).expand_as(embeds), rows)
