"""The ``leftmost`` commit rule: fill masks left to right, whatever the confidence.

A commit rule answers one question per step: which of the candidate positions (masked, eligible) to
commit. dvlm's contract: ``rule(confidence [B, N], candidates [B, N] bool, count [B] int64 | None) ->
commit [B, N] bool``, never a non-candidate, at least one position in a row that has candidates.
``count`` is the step's share from the sampler's schedule (``fixed_count``, ``dream``); a sampler without
a schedule (``parallel``) passes None, and this rule then commits ``per_step`` positions.
"""

from __future__ import annotations

import torch


class Leftmost:
    def __init__(self, params) -> None:
        self.per_step = params.per_step

    def __call__(self, confidence: torch.Tensor, candidates: torch.Tensor, count: torch.Tensor | None = None):
        if count is None:
            count = torch.full(candidates.shape[:1], self.per_step, device=candidates.device)
        order = candidates.long().cumsum(-1)  # [B, N]: 1 for the leftmost candidate, 2 for the next...
        return candidates & (order <= count.clamp(min=1)[:, None])
