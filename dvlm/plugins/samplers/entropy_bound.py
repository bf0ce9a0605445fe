"""EB-Sampler's entropy-bounded commit rule (Ben-Hamu et al., "Accelerated Sampling from Masked Diffusion
Models via Entropy Bounded Unmasking", arXiv:2505.24857).

Rule: sort the candidates by entropy, ascending, and commit the k lowest-entropy ones for the largest k with

    sum_{i <= k} H_(i)  -  max_{i <= k} H_(i)  <=  gamma

(the left side bounds the mutual information among the k tokens, so they are nearly independent and may be
decoded together). Sorted ascending, the running maximum is the k-th entropy itself, so the test is
``cumsum(H)_k - H_(k) <= gamma``; the lowest-entropy candidate always passes (0 <= gamma). This is exactly
``transformers``' ``EntropyBoundSampler.accept_canvas`` (models/diffusion_gemma), which applies it to every
position of its canvas; here it applies to the step's candidates only (non-candidates are never committed).

The entropy arrives as the confidence: use the ``neg_entropy`` confidence measure (``alg: entropy`` under the
``dream`` sampler), whose value is ``-H``. The rule ignores the schedule's count (it adapts the number of
commits per step, like Fast-dLLM's threshold rule); steps continue until the block is filled.
"""

from __future__ import annotations

import torch


class EntropyBound:
    def __init__(self, params) -> None:
        self.gamma = params.gamma

    def __call__(self, confidence: torch.Tensor, candidates: torch.Tensor, count=None) -> torch.Tensor:
        """``confidence [B, N]`` (= -entropy), ``candidates [B, N]`` -> ``commit [B, N]``."""
        entropy = torch.where(candidates, -confidence, float("inf"))  # [B, N]; non-candidates sort last
        sorted_entropy, order = entropy.sort(dim=-1, stable=True)  # ascending
        finite = torch.where(sorted_entropy.isfinite(), sorted_entropy, 0.0)
        accept = (finite.cumsum(-1) - finite <= self.gamma) & sorted_entropy.isfinite()  # [B, N] in sorted order
        return torch.zeros_like(accept).scatter(-1, order, accept) & candidates
