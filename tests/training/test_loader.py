"""Micro-batches at scale: built lazily per item, the same with DataLoader workers, grouped by modality and
length (same examples per step, less padding), and the padding fraction they report."""

import random
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

from dvlm.data.encode import IMAGE_SLOT, ConversationEncoder
from dvlm.data.llava import Record
from dvlm.data.loader import ImageTokens, MicroBatches, loader, micro_batch_keys
from dvlm.train import distributed
from dvlm.train.determinism import python_rng
from dvlm.train.loop import Trainer, train
from tests.training.conftest import shapes_spec, text_spec


def mixed_records(n=64, seed=0):
    """Text rows and image rows (a placeholder each) of very different lengths, shuffled together."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = " ".join(["word"] * rng.choice([2, 40]))
        image = rng.random() < 0.5
        rows.append(Record(f"r{i}", (("user", ("<image>\n" if image else "") + "say " + words),
                                     ("assistant", words)), ("img.png",) if image else ()))
    return rows


class CountingEncoder:
    """The real encoder, counting the rows it encodes."""

    def __init__(self, encoder):
        self.encoder, self.calls = encoder, 0

    def __call__(self, record, rng):
        self.calls += 1
        return self.encoder(record, rng)


@pytest.fixture
def encoder(tokenizer, template, tiny_backbone):
    return ConversationEncoder(tokenizer, template, tiny_backbone.special_tokens, image_token_id=IMAGE_SLOT)


def dataset(records, encoder, global_size=16, **options):
    return MicroBatches(records, encoder, seed=0, micro_size=4, global_size=global_size, eos_id=251, **options)


def test_rows_are_encoded_only_when_their_micro_batch_is_built(encoder):
    counting = CountingEncoder(encoder)
    batches = dataset(mixed_records(), counting)
    assert counting.calls == 0
    batches[(3, 1)]
    assert counting.calls == 4


def test_workers_build_the_same_micro_batches(encoder):
    batches = dataset(mixed_records(), encoder, extra_padding=3, group_by_length=True)
    keys = micro_batch_keys(0, 3, accumulation=2, world=2, rank=1)
    assert keys[:3] == [(0, 1), (0, 3), (1, 1)]
    inline, workers = list(loader(batches, keys, 0)), list(loader(batches, keys, 2))
    assert len(inline) == len(workers) == 6
    for a, b in zip(inline, workers):
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
        assert a["padding"] == b["padding"]


def test_grouping_keeps_each_steps_examples_and_cuts_padding(encoder):
    """64 examples per step in 16 micro-batches: 2 modalities x 2 lengths make 4 clusters, so at most 3
    micro-batches straddle a boundary; the others pad (almost) nothing."""
    records = mixed_records(n=128)
    plain, grouped = dataset(records, encoder, 64), dataset(records, encoder, 64, group_by_length=True)
    padding = {False: [], True: []}
    for step in range(2):
        for batches, flag in ((plain, False), (grouped, True)):
            pairs = [pair for micro in range(16) for pair in batches.pairs(step, micro)]
            assert Counter(pairs) == Counter(plain.order[p] for p in range(step * 64, (step + 1) * 64))
            padding[flag] += [batches[(step, micro)]["padding"] for micro in range(16)]
        modalities = [{bool(grouped.records[i].images) for _, i in grouped.pairs(step, m)} for m in range(16)]
        assert sum(len(m) == 2 for m in modalities) <= 1  # at most the micro-batch at the modality boundary mixes
    assert sum(padding[True]) < 0.3 * sum(padding[False])


def test_padding_fraction_counts_image_features_and_eos(tmp_path):
    trainer = Trainer(shapes_spec(tmp_path), distributed.start("cpu"), False, lambda message: None)
    batches = trainer.batches
    assert isinstance(batches.image_tokens, ImageTokens)
    batch = batches[(0, 0)]
    examples = [batches.encoder(batches.records[i], python_rng(0, "example", epoch, i))
                for epoch, i in batches.pairs(0, 0)]
    per_image = trainer.vlm.count_image_tokens(batch["images"][0][0])  # 16: a 4 x 4 patch grid
    real = [len(e.input_ids) - 1 + per_image for e in examples]
    width = batch["input_ids"].shape[1] - 1 + per_image
    assert batch["padding"] == pytest.approx(1 - sum(real) / (len(real) * width))
    embeds, _ = trainer.model.embed(batch)
    assert embeds.shape[1] == width  # the width the fraction assumed is the model's


def test_training_with_workers_ends_identical(tmp_path):
    a = train(text_spec(tmp_path / "a", steps=3), progress=False)
    b = train(text_spec(tmp_path / "b", steps=3, data__num_workers=2), progress=False)
    wa, wb = load_file(str(a.checkpoint / "model.safetensors")), load_file(str(b.checkpoint / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    rows = [line for line in (tmp_path / "b/run/metrics.jsonl").read_text().splitlines() if '"padding"' in line]
    assert len(rows) == 3
