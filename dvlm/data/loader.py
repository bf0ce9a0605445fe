"""Micro-batches as a map-style dataset keyed by (step, micro-batch), read by DataLoader workers.

A micro-batch is a pure function of its key and the run's spec (``dvlm.data.batching``): which examples,
their augmentation, their padding. So the workers can tokenise rows, decode images and pad ahead of the
step in any order and any number of processes, and the run still computes exactly what a run without
workers does. Nothing is tokenised up front: each row is encoded when its micro-batch is built.

Length grouping (``group_by_length``, LLaVA's ``group_by_modality_length``): the examples of one
optimizer step are sorted by (text-only after image rows, estimated length) before being cut into
micro-batches, so each micro-batch holds one modality and similar lengths and pads less; every step
still trains on the same examples. The length estimate is LLaVA's: words of the conversation, no
tokeniser.

Each micro-batch reports its padding: the fraction of token positions (image features included, after
``max_length`` truncation) that are EOS padding rather than example tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from dvlm.data.batching import ExampleOrder, collate
from dvlm.data.encode import IMAGE_SLOT
from dvlm.data.llava import Record
from dvlm.train.determinism import python_rng


@dataclass(frozen=True)
class ImageTokens:
    """How many feature tokens an image becomes, from its size (the model's image layout and view size)."""

    image_layout: Any
    view_size: int
    grid_size: int

    def __call__(self, image: Any) -> int:
        return self.image_layout.num_tokens(image.size, self.view_size, self.grid_size)


def estimated_length(record: Record) -> int:
    """LLaVA's cheap length: the words of every turn (no tokeniser)."""
    return sum(len(text.split()) for _, text in record.turns)


class MicroBatches(torch.utils.data.Dataset):
    """``(step, micro)`` -> the collated micro-batch ``{"input_ids", "labels", "images", "padding"}``."""

    def __init__(self, records: Sequence[Record], encoder: Any, *, seed: int, micro_size: int, global_size: int,
                 eos_id: int, extra_padding: int = 0, group_by_length: bool = False,
                 max_length: int | None = None, image_tokens: ImageTokens | None = None,
                 max_image_pixels: int | None = None) -> None:
        self.records, self.encoder, self.seed = records, encoder, seed
        self.micro_size, self.global_size, self.eos_id = micro_size, global_size, eos_id
        self.extra_padding, self.group_by_length, self.max_length = extra_padding, group_by_length, max_length
        self.image_tokens, self.max_image_pixels = image_tokens, max_image_pixels
        self.order = ExampleOrder(len(records), seed)

    def pairs(self, step: int, micro: int) -> list[tuple[int, int]]:
        """(epoch, row index) of the examples of micro-batch ``micro`` of step ``step``."""
        if not self.group_by_length:
            return self.order.micro_batch(step, micro, self.micro_size, self.global_size)
        start = step * self.global_size
        in_step = [self.order[p] for p in range(start, start + self.global_size)]

        def key(pair: tuple[int, int]) -> tuple:
            record = self.records[pair[1]]
            return (not record.images, estimated_length(record), pair)

        grouped = sorted(in_step, key=key)
        return grouped[micro * self.micro_size: (micro + 1) * self.micro_size]

    def __getitem__(self, key: tuple[int, int]) -> dict:
        step, micro = key
        pairs = self.pairs(step, micro)
        examples = [self.encoder(self.records[i], python_rng(self.seed, "example", epoch, i)) for epoch, i in pairs]
        batch = collate(examples, self.eos_id, self.extra_padding, python_rng(self.seed, "pad", step, micro))
        if self.image_tokens is not None and any(batch["images"]):
            from dvlm.core.image import load_image

            batch["images"] = [tuple(load_image(path, self.max_image_pixels) for path in row)
                               for row in batch["images"]]
        batch["padding"] = self.padding(examples, batch)
        return batch

    def padding(self, examples: Sequence[Any], batch: dict) -> float:
        """Fraction of the micro-batch's token positions (after image splicing and truncation) that pad."""
        extra = []  # per row: image feature tokens minus the one slot each replaces
        for example, images in zip(examples, batch["images"]):
            slots = sum(token == IMAGE_SLOT for token in example.input_ids)
            tokens = sum(self.image_tokens(image) for image in images) if self.image_tokens and images else slots
            extra.append(tokens - slots)
        width = batch["input_ids"].shape[1] + max(extra)  # the length the model pads every row to
        real = [len(example.input_ids) + more for example, more in zip(examples, extra)]
        if self.max_length is not None:
            width, real = min(width, self.max_length), [min(r, self.max_length) for r in real]
        return 1.0 - sum(real) / (len(real) * width)


def micro_batch_keys(start: int, end: int, accumulation: int, world: int, rank: int) -> list[tuple[int, int]]:
    """This process's keys for steps ``[start, end)``, in the order the loop consumes them."""
    return [(step, a * world + rank) for step in range(start, end) for a in range(accumulation)]


def loader(dataset: MicroBatches, keys: list[tuple[int, int]], workers: int) -> Iterator[dict]:
    """The micro-batches of ``keys`` in order; ``workers`` > 0 builds them in background processes."""
    if workers == 0:
        return (dataset[key] for key in keys)
    return iter(torch.utils.data.DataLoader(dataset, sampler=keys, batch_size=None, num_workers=workers,
                                            prefetch_factor=4, collate_fn=_identity))


def _identity(batch: dict) -> dict:
    return batch
