"""Conformance check for masking strategies: labels in, a ``MaskedBatch`` that trains what it should out."""

from __future__ import annotations

from typing import Any

import torch

from dvlm.core.masked_batch import IGNORE_INDEX, MaskedBatch


def check_masking_strategy(strategy: Any) -> None:
    """Only targets are masked, weights vanish off the masked positions, the copies are copy-major, and the
    loss is finite, non-negative and differentiable, also for a batch without any target."""
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 5, 6, 7, 8], [IGNORE_INDEX, 3, 4, 2, IGNORE_INDEX, 1]])
    for seed in range(4):
        out = strategy({"labels": labels}, torch.Generator().manual_seed(seed))
        assert isinstance(out, MaskedBatch), f"a masking strategy returns a MaskedBatch, got {type(out).__name__}"
        rows = labels.shape[0] * out.copies
        assert out.masked.shape == out.labels.shape == out.weights.shape == (rows, labels.shape[1])
        targets = (labels != IGNORE_INDEX).repeat(out.copies, 1)
        assert not bool((out.masked & ~targets).any()), "a non-target position was masked"
        assert bool((out.weights[~out.masked] == 0).all()), "weights must be zero where nothing is masked"
        assert torch.equal(out.labels[out.masked], labels.repeat(out.copies, 1)[out.masked])
        logits = torch.randn(rows, labels.shape[1], 10, requires_grad=True)
        loss = out.loss(logits)
        loss.backward()
        assert loss.dim() == 0 and bool(torch.isfinite(loss)) and loss.item() >= 0
        embeds = torch.randn(labels.shape[0], labels.shape[1], 4)
        assert out.noise_embeds(embeds, torch.zeros(4)).shape == (rows, labels.shape[1], 4)
    empty = strategy({"labels": torch.full((2, 3), IGNORE_INDEX)}, torch.Generator().manual_seed(0))
    assert float(empty.loss(torch.randn(2 * empty.copies, 3, 10))) == 0.0
