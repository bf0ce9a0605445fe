"""LLaVA projectors. ``nn.Sequential`` on purpose: its child names (``0``, ``2``) are the published
``mm_projector.0.*`` / ``mm_projector.2.*`` keys, so checkpoints load without renaming.

Shape legend: ``[..., in_dim] -> [..., out_dim]``.
"""

from __future__ import annotations

from torch import nn


def build_mlp2x_gelu(params, in_dim: int, out_dim: int) -> nn.Sequential:
    """``Linear(in, out) -> GELU (exact) -> Linear(out, out)``, with biases."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


def build_linear(params, in_dim: int, out_dim: int) -> nn.Linear:
    """One ``Linear(in, out)`` with bias (published key ``mm_projector.weight``)."""
    return nn.Linear(in_dim, out_dim)
