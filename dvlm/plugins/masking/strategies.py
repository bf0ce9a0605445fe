"""Uniform (LLaDA) and complementary (LaViDa) masking: labels in, a ``MaskedBatch`` out.

Shape legend: B examples, T tokens, R = C·B noised rows (C copies, copy-major).

Both strategies see only ``batch["labels"] [B, T]`` (a token id at target positions,
``IGNORE_INDEX`` elsewhere), so they work unchanged on text-only and multimodal batches: the
prompt, image and infill-marker positions carry ``IGNORE_INDEX`` and are never masked. Random
draws come from ``generator`` on the CPU and are moved to the labels' device, so a seed gives the
same masks on every device and in every process.
"""

from __future__ import annotations

from typing import Mapping

import torch

from dvlm.core.masked_batch import IGNORE_INDEX, MaskedBatch
from dvlm.plugins.masking.params import ComplementaryMaskingParams, UniformMaskingParams, Weighting


def draw_mask(targets: torch.Tensor, eps: float, generator: torch.Generator | None):
    """Per row t ~ U(0,1) and p = (1-ε)t + ε; each target masked independently with probability p.

    ``targets [B, T]`` bool -> ``masked [B, T]`` bool, ``t [B]``, ``p [B]`` (on the targets' device).
    """
    batch, length = targets.shape
    t = torch.rand(batch, generator=generator)
    noise = torch.rand(batch, length, generator=generator)
    p = (1 - eps) * t + eps
    masked = (noise < p[:, None]).to(targets.device) & targets
    return masked, t.to(targets.device), p.to(targets.device)


def loss_weights(masked: torch.Tensor, targets: torch.Tensor, t: torch.Tensor, p: torch.Tensor,
                 weighting: Weighting, eps: float) -> torch.Tensor:
    """``[R, T]`` per-token weights; the loss is Σ weights · CE (see ``params.Weighting``).

    Both inverse weightings floor their denominator at ε (1/max(t, ε), 1/max(p, ε)), so no row weighs more than
    1/ε: a draw of t = 0 cannot make an infinite weight, nor can a complementary copy whose mask probability
    1 - p is near 0 (unfloored it reached ~1.7e7).
    """
    masked_f = masked.float()
    if weighting == "none":
        return masked_f / masked_f.sum().clamp(min=1)
    scale = 1 / (p if weighting == "inverse_p" else t).clamp(min=eps)  # [R]
    per_row = scale / targets.sum(dim=1).clamp(min=1) / masked.shape[0]  # [R]
    return masked_f * per_row[:, None].float()


def _targets(batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    labels = batch["labels"]
    if labels.dim() != 2:
        raise ValueError(f"labels must be [batch, tokens], got shape {tuple(labels.shape)}")
    return labels, labels != IGNORE_INDEX


class UniformMasking:
    """LLaDA SFT: one copy, target tokens masked with probability p; 1/p weighting by default."""

    def __init__(self, params: UniformMaskingParams) -> None:
        self.params = params

    def __call__(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> MaskedBatch:
        labels, targets = _targets(batch)
        masked, t, p = draw_mask(targets, self.params.eps, generator)
        weights = loss_weights(masked, targets, t, p, self.params.weighting, self.params.eps)
        return MaskedBatch(copies=1, masked=masked, labels=labels.masked_fill(~masked, IGNORE_INDEX),
                           weights=weights, t=t, p=p)


class ComplementaryMasking:
    """LaViDa: copy 1 masks M (as uniform), copy 2 masks the targets M leaves visible.

    Together the two copies supervise every target token exactly once per step. Copy 2 has time
    1 - t and mask probability 1 - p, which is what ``inverse_t`` / ``inverse_p`` weight it by.
    LaViDa also forces at least one masked position per row anywhere in the row (prompt
    included); on the targets that only moves a token between M and its complement, so it is
    left out here.
    """

    def __init__(self, params: ComplementaryMaskingParams) -> None:
        self.params = params

    def __call__(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> MaskedBatch:
        labels, targets = _targets(batch)
        first, t, p = draw_mask(targets, self.params.eps, generator)
        masked = torch.cat([first, targets & ~first])  # [2B, T]: M then its complement
        both_targets = targets.repeat(2, 1)  # [B, T] -> [2B, T]
        t2, p2 = torch.cat([t, 1 - t]), torch.cat([p, 1 - p])  # [2B]
        weights = loss_weights(masked, both_targets, t2, p2, self.params.weighting, self.params.eps)
        rows = labels.repeat(2, 1)  # [B, T] -> [2B, T]
        return MaskedBatch(copies=2, masked=masked, labels=rows.masked_fill(~masked, IGNORE_INDEX),
                           weights=weights, t=t2, p=p2)
