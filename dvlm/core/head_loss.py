"""Cross-entropy at gathered positions with the LM head applied chunk by chunk: ``[B, T, V]`` never exists.

The training loss and the likelihood score only masked positions. They gather those rows of the backbone's
aligned hidden states (``Backbone.hidden_states``), and this module turns them into per-row cross-entropies,
``chunk_rows`` rows at a time, so at most ``[chunk_rows, V]`` logits live at once. Under autograd each chunk
is recomputed in the backward pass (activation checkpointing), so its logits are not kept for it either.

Each row's cross-entropy depends on that row only, so chunking changes no value; callers sum the ``[M]``
result in one reduction, as they did over the full logits.

Shapes: M gathered rows, D width, V vocabulary, C chunk rows.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

LOGITS_CHUNK_BYTES = 256 << 20
"""Default budget of one chunk's fp32 logits (256 MiB: 530 rows of a 126,464-token vocabulary)."""


def chunk_rows_for(vocab_size: int, budget_bytes: int = LOGITS_CHUNK_BYTES) -> int:
    """Rows per chunk so that one chunk's fp32 logits fit ``budget_bytes``."""
    return max(1, budget_bytes // (4 * vocab_size))


def _cross_entropy(head: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor,
                   targets: torch.Tensor) -> torch.Tensor:
    """``hidden [C, D]``, ``targets [C]`` -> fp32 cross-entropy ``[C]``."""
    return F.cross_entropy(head(hidden).float(), targets, reduction="none")


def gathered_cross_entropy(head: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor,
                           targets: torch.Tensor, chunk_rows: int) -> torch.Tensor:
    """``hidden [M, D]`` (gathered aligned hidden states), ``targets [M]`` -> cross-entropy ``[M]`` (fp32).

    ``head``: ``[C, D] -> [C, V]`` (``Backbone.head``); ``chunk_rows``: rows per chunk (``chunk_rows_for``)."""
    pieces = [hidden.new_zeros(0, dtype=torch.float32)]
    for part, part_targets in zip(hidden.split(chunk_rows), targets.split(chunk_rows)):  # [C, D], [C]
        if torch.is_grad_enabled() and part.requires_grad:
            pieces.append(checkpoint(_cross_entropy, head, part, part_targets, use_reentrant=False))
        else:
            pieces.append(_cross_entropy(head, part, part_targets))
    return torch.cat(pieces)  # [M]
