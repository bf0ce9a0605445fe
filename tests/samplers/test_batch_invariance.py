"""bf16 batch invariance: a row of a ragged batch gets exactly its batch-1 tokens (issue #14).

20 random ragged batches (B = 2..6, prompt lengths 3..40) per model, sampler and cache. Two things make
this exact in bf16: RoPE positions counted over real tokens (left padding does not shift a row's
positions), and prompts left-padded to a multiple of ``KEY_ALIGNMENT`` in every batch (the CPU attention
kernel's lane layout; see ``dvlm/plugins/samplers/canvas.py``).
"""

import random

import pytest
import torch

import dvlm
from dvlm.plugins.samplers.canvas import KEY_ALIGNMENT
from tests.samplers.conftest import FIXTURES

SAMPLERS = {
    "fixed_count": {"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8},
    "dream": {"kind": "dream", "gen_length": 16, "steps": 8, "alg": "entropy"},
    "parallel": {"kind": "parallel", "gen_length": 16, "block_length": 8, "threshold": 0.5},
}


@pytest.fixture(scope="module")
def bf16_models():
    return {name: dvlm.load_pretrained(FIXTURES / f"{name}_tiny", dtype="bfloat16") for name in ("llada", "dream")}


def ragged_batches(seed: int, count: int = 20):
    rng = random.Random(seed)
    for _ in range(count):
        yield [[rng.randrange(0, 240) for _ in range(rng.randint(3, 40))] for _ in range(rng.randint(2, 6))]


@pytest.mark.parametrize("cache", ["none", "prefix"])
@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("model", ["llada", "dream"])
def test_bf16_ragged_batches_give_the_batch_1_tokens(bf16_models, model, sampler, cache):
    backbone = bf16_models[model]
    spec = {**SAMPLERS[sampler], "cache": cache}
    differing = []
    for case, rows in enumerate(ragged_batches(seed=len(model) * 7 + len(sampler))):
        batch = dvlm.generate(backbone, rows, sampler=spec)
        for b, row in enumerate(rows):
            single = dvlm.generate(backbone, [row], sampler=spec)
            if batch.token_ids[b].tolist() != single.token_ids[0].tolist():
                differing.append((case, b, len(row)))
    assert not differing, f"(case, row, prompt length) differing from batch 1: {differing}"


def test_left_padding_keeps_each_rows_positions(bf16_models):
    """The backbone's default positions count real tokens: a padded row's logits are its batch-1 logits,
    bit for bit, once the pad count is a multiple of the kernel's lanes."""
    backbone = bf16_models["dream"]
    row = torch.randint(0, 240, (1, 21), generator=torch.Generator().manual_seed(0))
    pads = torch.full((1, KEY_ALIGNMENT), 251)
    padded = torch.cat([pads, row], dim=1)  # [1, 16 + 21]
    padding = torch.cat([torch.zeros_like(pads), torch.ones_like(row)], dim=1)
    with torch.no_grad():
        alone = backbone(row)
        in_batch = backbone(padded, attention_mask=padding)[:, KEY_ALIGNMENT:]
        shifted = backbone(padded, attention_mask=padding, position_ids=torch.arange(padded.shape[1])[None])
    # Dream's aligned row 0 is the head on the token before it (a pad in the batch): compare from row 1
    assert torch.equal(in_batch[:, 1:], alone[:, 1:])
    assert not torch.equal(shifted[:, KEY_ALIGNMENT + 1 :], alone[:, 1:])  # absolute positions: another bf16 answer
