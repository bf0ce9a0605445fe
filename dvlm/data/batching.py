"""Which examples each step sees, and how they become padded tensors.

Order: the training set is read as an endless stream of epochs, each a seeded permutation. The
optimizer step ``s`` takes stream positions ``[s·G, (s+1)·G)`` (G the global batch), split into
``G / micro`` micro-batches; micro-batch ``u = accumulation_step · world + rank``. The data position
of a run is therefore just its step: resuming needs nothing else, and a micro-batch holds the same
examples whatever the number of processes.

Padding (LLaDA SFT, LaViDa): rows are right-padded with end-of-sequence tokens up to the longest
row, and those EOS tokens are targets, which is how the model learns to fill unused answer length
with EOS. LaViDa's length augmentation adds ``extra ~ U{-m..m}`` more EOS to every row when positive.
"""

from __future__ import annotations

import random
from typing import Sequence

import torch

from dvlm.data.encode import Encoded
from dvlm.train.determinism import generator


class ExampleOrder:
    """Stream position -> (epoch, example index), from one seeded permutation per epoch."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def __getitem__(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.size)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, torch.randperm(self.size, generator=generator(self.seed, "epoch", epoch))
        return epoch, int(self._perm[offset])

    def micro_batch(self, step: int, micro: int, micro_size: int, global_size: int) -> list[tuple[int, int]]:
        """The (epoch, index) pairs of micro-batch ``micro`` of optimizer step ``step``."""
        start = step * global_size + micro * micro_size
        return [self[p] for p in range(start, start + micro_size)]


def collate(examples: Sequence[Encoded], eos_id: int, extra_padding: int = 0,
            rng: random.Random | None = None) -> dict:
    """-> ``{"input_ids": [B, T], "labels": [B, T], "images": [per-row tuple of paths]}``."""
    longest = max(len(e.input_ids) for e in examples)
    extra = rng.randint(-extra_padding, extra_padding) if extra_padding and rng is not None else 0
    length = longest + max(extra, 0)
    input_ids = torch.full((len(examples), length), eos_id, dtype=torch.long)  # [B, T]
    labels = torch.full((len(examples), length), eos_id, dtype=torch.long)  # [B, T]: EOS padding is a target
    for row, example in enumerate(examples):
        input_ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids, dtype=torch.long)
        labels[row, : len(example.labels)] = torch.tensor(example.labels, dtype=torch.long)
    return {"input_ids": input_ids, "labels": labels, "images": [e.images for e in examples]}
