"""The geometric schedule: step i gets a share proportional to ratio**i of the masked tokens."""

import torch


class GeometricSchedule:
    def __init__(self, params):
        self.ratio = params.ratio

    def counts(self, num_masked: torch.Tensor, steps: int) -> torch.Tensor:
        """``num_masked [B]`` -> ``[B, min(steps, max masks)]`` counts, each row summing to its masks."""
        steps = max(1, min(steps, int(num_masked.max())))
        weights = self.ratio ** torch.arange(steps, dtype=torch.float64)
        cumulative = torch.cumsum(weights, 0) / weights.sum()  # [steps], ends at 1
        totals = torch.floor(num_masked.to(torch.float64)[:, None] * cumulative + 1e-9).to(torch.int64)  # [B, steps]
        totals[:, -1] = num_masked
        return torch.diff(totals, dim=1, prepend=torch.zeros_like(totals[:, :1]))
