"""Dream's count rule (``_sample``): ``k_i = int(n_i * (1 - t_{i+1} / t_i))``, all remaining masks at the end.

``t = linspace(1, eps, K + 1)`` in float32 and ``n_i`` is the number of masks still present at step i. Because
of the truncation the first step usually commits one token fewer than the rest (often zero when K = M) and the
last step takes the remainder; see ``backbones.md`` §4.6. The counts are computed ahead of time by replaying
the rule, which is exact because every step commits exactly ``k_i`` tokens.

Dream divides the mask count of the whole batch by B, so every row gets the same k; here each row uses its
own count, which is the same whenever the rows have equal mask counts (the only case the reference gets
right) and keeps a row's counts independent of its batch otherwise.
"""

from __future__ import annotations

import torch


def dream_counts(masks: int, steps: int, eps: float, iterations: int | None = None) -> list[int]:
    """Per-step counts for one row; ``iterations`` (default ``steps``) < ``steps`` stops early and dumps the rest.

    ``iterations`` reproduces LaViDa-Dream's ``step_ratio``: the timesteps come from ``steps`` but only
    ``iterations`` steps run, the last of them committing everything left.
    """
    iterations = steps if iterations is None else iterations
    timesteps = torch.linspace(1, eps, steps + 1)  # [steps + 1] float32
    counts, remaining = [], masks
    for i in range(iterations):
        if i < iterations - 1:
            k = int(torch.tensor(float(remaining)) * (1 - timesteps[i + 1] / timesteps[i]))
        else:
            k = remaining
        counts.append(k)
        remaining -= k
    return counts


class DreamSchedule:
    def __init__(self, params) -> None:
        self.eps = params.eps

    def counts(self, num_masked: torch.Tensor, steps: int) -> torch.Tensor:
        """``num_masked [B]`` -> ``[B, steps]`` int64 (entries may be 0: Dream keeps those steps' timing)."""
        rows = [dream_counts(int(m), steps, self.eps) for m in num_masked.detach().to("cpu").reshape(-1)]
        return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), steps)
