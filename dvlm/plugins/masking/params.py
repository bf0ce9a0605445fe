"""Params models of the built-in masking strategies (light: pydantic only, no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dvlm.core.specs import ComponentParams

Weighting = Literal["none", "inverse_t", "inverse_p"]
"""How masked tokens are weighted in the loss (see ``strategies.loss_weights``):

- ``none``: the plain mean cross-entropy over every masked target token of the batch, all copies
  together (LaViDa's code);
- ``inverse_t``: each row's masked tokens weighted by 1/t (LaViDa's paper, Eq. 2), normalised by
  the row's target count and averaged over rows;
- ``inverse_p``: weighted by 1/p, p the row's mask probability, normalised by the row's target
  count (the answer length, EOS padding included) and averaged over rows (LLaDA SFT; LLaDA-V).
"""


class UniformMaskingParams(ComponentParams):
    """LLaDA: one noised copy; t ~ U(0,1), each target token masked with p = (1-ε)t + ε."""

    kind: Literal["uniform"] = "uniform"
    eps: float = Field(1e-3, gt=0, lt=1)
    """ε: the floor of the mask probability, so that t near 0 still masks something."""
    weighting: Weighting = "inverse_p"
    """Loss weighting of masked tokens: ``none`` | ``inverse_t`` | ``inverse_p`` (LLaDA, default)."""


class ComplementaryMaskingParams(ComponentParams):
    """LaViDa: two copies per example, mask M and its complement over the targets, batch 2B."""

    kind: Literal["complementary"] = "complementary"
    eps: float = Field(1e-3, gt=0, lt=1)
    """ε: the floor of the first copy's mask probability p = (1-ε)t + ε."""
    weighting: Weighting = "none"
    """Loss weighting: ``none`` (LaViDa's code, default) | ``inverse_t`` (its paper) | ``inverse_p``."""
