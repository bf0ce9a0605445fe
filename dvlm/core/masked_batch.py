"""The output of a masking strategy: noised copies of a batch and their loss weights.

A masking strategy (``dvlm/plugins/masking``) decides *which* target positions are masked and how
each masked token is weighted; this object applies that decision to ids or embeddings and turns
logits into the loss. Keeping the decision separate from the inputs is what lets LaViDa's
complementary masking run the vision encoder once: the trainer embeds the batch once
(``[B, T, D]``) and ``noise_embeds`` repeats it per copy, so every copy shares the same image
features and their gradients sum into the encoder.

Shape legend: B examples, C copies per example, R = C·B rows (copy-major: row ``c·B + b`` is copy
``c`` of example ``b``), T tokens, D width, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import Callable

import torch
import torch.nn.functional as F

from dvlm.core.head_loss import chunk_rows_for, gathered_cross_entropy

IGNORE_INDEX = -100
"""Label of a position that is not a target (prompt, image, padding that is not supervised)."""


@dataclass(frozen=True)
class MaskedBatch:
    """Which positions of each noised copy are masked, their targets and per-token loss weights."""

    copies: int
    """C: how many noised copies of each example (1 for uniform, 2 for complementary)."""
    masked: torch.Tensor
    """``[R, T]`` bool: positions replaced by the mask token (always a subset of the targets)."""
    labels: torch.Tensor
    """``[R, T]`` int64: the clean token at masked positions, ``IGNORE_INDEX`` elsewhere."""
    weights: torch.Tensor
    """``[R, T]`` float32: loss = Σ weights · cross-entropy; zero wherever ``masked`` is False."""
    t: torch.Tensor
    """``[R]`` the diffusion time of each row (complementary copy: ``1 - t``)."""
    p: torch.Tensor
    """``[R]`` the per-token mask probability of each row (complementary copy: ``1 - p``)."""

    def noise_ids(self, input_ids: torch.Tensor, mask_id: int) -> torch.Tensor:
        """``[B, T]`` clean ids -> ``[R, T]`` ids with masked positions set to ``mask_id``."""
        rows = input_ids.repeat(self.copies, 1)  # [B, T] -> [R, T]
        return rows.masked_fill(self.masked.to(rows.device), mask_id)

    def noise_embeds(self, embeds: torch.Tensor, mask_embed: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]`` clean embeddings -> ``[R, T, D]`` with masked positions set to ``mask_embed [D]``.

        The copies are views of one embedding tensor in the autograd graph, so whatever produced
        ``embeds`` (vision encoder, projector) ran once and receives the sum of both copies' gradients.
        """
        rows = embeds.repeat(self.copies, 1, 1)  # [B, T, D] -> [R, T, D]
        masked = self.masked.to(rows.device).unsqueeze(-1)  # [R, T, 1]
        return torch.where(masked, mask_embed.to(rows.dtype), rows)

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        """``[R, T, V]`` position-aligned logits -> scalar Σ weights · CE over masked positions (fp32)."""
        masked = self.masked.to(logits.device)
        picked = logits[masked].float()  # [M, V]: only masked positions are scored
        ce = F.cross_entropy(picked, self.labels.to(logits.device)[masked], reduction="none")  # [M]
        return (ce * self.weights.to(logits.device)[masked]).sum()

    def loss_from_hidden(self, hidden: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor],
                         vocab_size: int) -> torch.Tensor:
        """``[R, T, D]`` position-aligned hidden states -> the same loss as ``loss``, with the LM head ``head``
        applied to the masked rows only, in chunks (``dvlm.core.head_loss``): ``[R, T, V]`` never exists."""
        masked = self.masked.to(hidden.device)
        picked = hidden[masked]  # [M, D]
        ce = gathered_cross_entropy(head, picked, self.labels.to(hidden.device)[masked],
                                    chunk_rows_for(vocab_size))  # [M]
        return (ce * self.weights.to(hidden.device)[masked]).sum()

    @property
    def num_masked(self) -> int:
        return int(self.masked.sum())
