"""LaViDa's ``get_num_transfer_tokens_sch`` "floor path" (shift, cosine, logit-normal, linear_floor).

For a block with M masked tokens and K requested steps:

1. ``K' = min(K, M)``: never more steps than masks;
2. cumulative counts ``c_k = floor(M * g(k / K'))`` on a float32 ``linspace(0, 1, K' + 1)``;
3. per-step differences, clamped to >= 1 (at least one token per step);
4. the excess over M is removed one unit at a time, walking k = 0, 1, 2, ... cyclically and skipping 1s;
5. the order is reversed: the curve runs in diffusion time t = 1 -> 0.

The float32 arithmetic mirrors the reference expression by expression (including the numpy cosine), so
the integer counts are identical. One deliberate difference: the reference caps K' with the *first*
row's mask count for the whole batch (and loops forever when a later row has fewer masks); here each
row uses its own ``min(K, M_b)``, which makes a row's counts independent of its batch. Shorter rows are
padded with zeros at the end.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def shift_curve(alpha: float, u: torch.Tensor) -> torch.Tensor:
    """LaViDa's ``logit_normal_schedule(shift, u)`` (a misnomer: it is the timestep shift)."""
    return alpha * u / (1 + (alpha - 1) * u)


def cosine_curve(u: torch.Tensor) -> torch.Tensor:
    """``1 - (1 + cos(pi u)) / 2``; the reference evaluates the cosine with numpy (float32)."""
    cos = torch.from_numpy(np.cos((math.pi * u.clamp(0, 1)).numpy()))
    return 1 - 0.5 * (1 + cos)


def logit_normal_curve(u: torch.Tensor) -> torch.Tensor:
    """``Phi(logit(u))``, the standard normal CDF of the logit."""
    return 0.5 * (1 + torch.erf(torch.log(u / (1 - u)) / torch.sqrt(torch.tensor(2.0))))


def identity_curve(u: torch.Tensor) -> torch.Tensor:
    return u


class FloorSchedule:
    """One of LaViDa's named schedules; ``params.kind`` picks the curve."""

    def __init__(self, params) -> None:
        curves = {
            "shift": lambda u: shift_curve(params.alpha, u),
            "cosine": cosine_curve,
            "logit_normal": logit_normal_curve,
            "linear_floor": identity_curve,
        }
        self.curve = curves[params.kind]
        self._grid = lru_cache(maxsize=64)(self._sigmas)

    def _sigmas(self, steps: int) -> torch.Tensor:
        return self.curve(torch.linspace(0, 1, steps + 1))  # [steps + 1] float32

    def row_counts(self, masks: int, steps: int) -> list[int]:
        """Counts for one row with ``masks`` masked tokens: ``min(steps, masks)`` entries, each >= 1."""
        steps = min(steps, masks)
        if steps == 0:
            return []
        cumulative = (self._grid(steps) * torch.tensor([masks])).to(torch.int64)  # [steps + 1]
        deltas = [max(int(d), 1) for d in cumulative[1:] - cumulative[:-1]]
        excess = sum(deltas) - masks
        if excess < 0:  # float32 rounding left g(1) just below 1: the last unit goes to the t = 1 step
            deltas[-1] -= excess
        j = 0
        while excess > 0:
            j %= len(deltas)
            if deltas[j] > 1:
                deltas[j] -= 1
                excess -= 1
            j += 1
        return deltas[::-1]

    def counts(self, num_masked: torch.Tensor, steps: int) -> torch.Tensor:
        """``num_masked [B]`` -> ``[B, min(steps, max M)]`` int64, zero-padded where a row has fewer steps."""
        rows = [self.row_counts(int(m), steps) for m in num_masked.detach().to("cpu").reshape(-1)]
        width = max((len(r) for r in rows), default=0)
        out = torch.zeros(len(rows), width, dtype=torch.int64)
        for b, row in enumerate(rows):
            out[b, : len(row)] = torch.tensor(row, dtype=torch.int64)
        return out
