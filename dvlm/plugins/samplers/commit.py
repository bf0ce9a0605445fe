"""Commit rules: which candidate positions a step commits, fully vectorised (no per-row loop, no host sync).

Contract: ``rule(confidence [B, N], candidates [B, N] bool, count [B] int64 | None) -> commit [B, N] bool``.
Non-candidates are never committed; ``count`` is the schedule's number for this step, None under a sampler
without a schedule (``parallel``). A row without candidates commits nothing; any other row commits at least
one position under every rule (except where the schedule's count for that row is 0; a step whose
count is 0 in every row is skipped by the loop, never run). A rule may set
``plan_exact = True`` when it commits exactly ``min(count, candidates)``: the shared loop then trusts the
schedule to finish each block and skips its per-step host sync (``loop.py``).
"""

from __future__ import annotations

import torch


def ranks(confidence: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Rank of each position by confidence, candidates first (0 = most confident): ``[B, N]`` int64."""
    scores = confidence.masked_fill(~candidates, float("-inf"))
    order = scores.argsort(dim=-1, descending=True, stable=True)  # [B, N]
    positions = torch.arange(scores.shape[-1], device=scores.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


class FixedCount:
    """Commit the ``count`` most confident candidates (LLaDA's per-row ``topk``); without a schedule
    (``count=None``, e.g. under ``parallel``) the single most confident one."""

    plan_exact = True  # commits exactly min(count, candidates): the schedule says when a block is done

    def __init__(self, params=None) -> None:
        self.params = params

    def __call__(self, confidence, candidates, count=None):
        limit = 1 if count is None else count[:, None]
        return candidates & (ranks(confidence, candidates) < limit)


class Threshold:
    """Fast-dLLM ``get_transfer_index(threshold=tau)``: every candidate with confidence >= tau, plus the top one."""

    def __init__(self, params) -> None:
        self.threshold = params.threshold

    def __call__(self, confidence, candidates, count=None):
        return candidates & ((confidence >= self.threshold) | (ranks(confidence, candidates) == 0))


def factor_accept(sorted_confidence: torch.Tensor, num_ranked: torch.Tensor, factor: float) -> torch.Tensor:
    """How many of the sorted confidences ``[B, N]`` the factor rule accepts: ``[B]`` int64.

    Thresholds are ``thr_0 = -1`` and ``thr_n = 1 - factor / (n + 2)`` (0-based n), tested on the first
    ``num_ranked [B]`` entries. With n* the first failing index (``num_ranked - 1`` if none fails), n*
    tokens are accepted, or n* + 1 when n* is 0 or the last index: the references' quirk, under which a
    failure at the very last position still accepts everything.
    """
    index = torch.arange(sorted_confidence.shape[-1], device=sorted_confidence.device)  # [N]
    thresholds = (1 - factor / (index + 2).to(sorted_confidence.dtype)).masked_fill(index == 0, -1.0)
    fails = (sorted_confidence < thresholds) & (index < num_ranked[:, None])  # [B, N]
    first_fail = torch.where(fails.any(-1), fails.to(torch.int64).argmax(-1), num_ranked - 1)  # [B]
    return first_fail + ((first_fail == 0) | (first_fail == num_ranked - 1)).to(torch.int64)


class Factor:
    """Fast-dLLM ``get_transfer_index_dynamic(factor=f)`` (LLaDA-V's hook calls f ``threshold``).

    The candidates are ranked; the accepted count never exceeds the number of candidates (the references
    could commit a position outside the block when the quirk fired there).
    """

    def __init__(self, params) -> None:
        self.factor = params.factor

    def __call__(self, confidence, candidates, count=None):
        num_candidates = candidates.sum(-1)  # [B]
        scores = confidence.masked_fill(~candidates, float("-inf"))
        accept = factor_accept(scores.sort(dim=-1, descending=True).values, num_candidates, self.factor)
        accept = torch.minimum(accept.clamp(min=0), num_candidates)
        return candidates & (ranks(confidence, candidates) < accept[:, None])
