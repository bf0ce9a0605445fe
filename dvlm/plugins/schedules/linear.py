"""LLaDA's ``get_num_transfer_tokens``: the linear schedule with uniform time steps.

With alpha_t = 1 - t and K equal time steps, the expected number of tokens unmasked per step is constant:
each step gets ``M // K`` tokens and the first ``M % K`` steps one more.
"""

from __future__ import annotations

import torch


class LinearSchedule:
    def __init__(self, params=None) -> None:
        self.params = params

    def counts(self, num_masked: torch.Tensor, steps: int) -> torch.Tensor:
        """``num_masked [B]`` -> ``[B, min(steps, max M)]`` int64.

        Identical to the reference for every row; the reference's trailing all-zero columns (``steps > M``)
        are dropped, since a step that commits nothing changes nothing.
        """
        masks = num_masked.detach().to("cpu", torch.int64).reshape(-1)  # [B]
        width = min(steps, int(masks.max())) if masks.numel() else 0
        base = masks // steps  # [B]
        remainder = masks % steps  # [B]
        step = torch.arange(width)  # [width]
        return base[:, None] + (step[None, :] < remainder[:, None]).to(torch.int64)  # [B, width]
