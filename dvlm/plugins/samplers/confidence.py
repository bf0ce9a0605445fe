"""Confidence measures: how sure the model is of its proposal at a masked position (higher = surer).

Contract: ``measure(probs [..., V], chosen [...], generator=None) -> confidence [...]`` (float). ``probs`` is the
distribution the sampler ranks by: LLaDA's un-noised softmax of the (suppressed) logits, or Dream's tempered
and filtered one. Computed in float32 (the references vary: LLaDA HEAD bf16, LaViDa/LLaDA-V float64; see
backbones.md §2.6); decisions only differ on exact ties. A measure that draws nothing from the generator says
``deterministic = True``: on the CPU a greedy step then proposes on the candidate rows only.
"""

from __future__ import annotations

import torch

Generator = torch.Generator | None


class Probability:
    """``p(chosen)``: LLaDA ``low_confidence``, Dream ``maskgit_plus``, Fast-dLLM."""

    deterministic = True  # a function of ``probs`` alone (see the module docstring)

    def __init__(self, params=None) -> None:
        self.params = params

    def __call__(self, probs: torch.Tensor, chosen: torch.Tensor, generator: Generator = None) -> torch.Tensor:
        return probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)


class Margin:
    """``p_(1) - p_(2)``, the gap between the two most likely tokens (independent of the chosen one)."""

    deterministic = True  # a function of ``probs`` alone (see the module docstring)

    def __init__(self, params=None) -> None:
        self.params = params

    def __call__(self, probs: torch.Tensor, chosen: torch.Tensor, generator: Generator = None) -> torch.Tensor:
        top2 = probs.topk(2, dim=-1).values  # [..., 2]
        return top2[..., 0] - top2[..., 1]


class NegEntropy:
    """``sum p log(p + 1e-10)``: the negative entropy of the distribution."""

    deterministic = True  # a function of ``probs`` alone (see the module docstring)

    def __init__(self, params=None) -> None:
        self.params = params

    def __call__(self, probs: torch.Tensor, chosen: torch.Tensor, generator: Generator = None) -> torch.Tensor:
        return (probs * torch.log(probs + 1e-10)).sum(-1)


class RandomConfidence:
    """Uniform noise: random remasking order (LLaDA ``random``)."""

    needs_probs = False

    def __init__(self, params=None) -> None:
        self.params = params

    def __call__(self, probs: torch.Tensor | None, chosen: torch.Tensor, generator: Generator = None) -> torch.Tensor:
        return torch.rand(chosen.shape, generator=generator, device=chosen.device)
