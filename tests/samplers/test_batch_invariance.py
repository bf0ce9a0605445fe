"""bf16 batch invariance: a row of a ragged batch gets exactly its batch-1 tokens (issue #14).

20 random ragged batches (B = 2..6, prompt lengths 3..40) per model, sampler and cache, and a few with
long prompts (150..235 tokens, past the CPU attention kernel's block sizes). Two things make this exact in
bf16: RoPE positions counted over real tokens (left padding does not shift a row's positions), and on the
CPU a padded batch's attention run row by row on each row's real keys (``dvlm.core.attention``).
"""

import random

import pytest
import torch

import dvlm
from tests.samplers.conftest import FIXTURES

SAMPLERS = {
    "fixed_count": {"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8},
    "dream": {"kind": "dream", "gen_length": 16, "steps": 8, "alg": "entropy"},
    "parallel": {"kind": "parallel", "gen_length": 16, "block_length": 8, "threshold": 0.5},
}


@pytest.fixture(scope="module")
def bf16_models():
    return {name: dvlm.load_pretrained(FIXTURES / f"{name}_tiny", dtype="bfloat16") for name in ("llada", "dream")}


def ragged_batches(seed: int, count: int = 20, lengths: tuple[int, int] = (3, 40)):
    rng = random.Random(seed)
    for _ in range(count):
        yield [[rng.randrange(0, 240) for _ in range(rng.randint(*lengths))] for _ in range(rng.randint(2, 6))]


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


@pytest.mark.parametrize("model", ["llada", "dream"])
def test_bf16_long_ragged_prompts_give_the_batch_1_tokens(bf16_models, model):
    """Past 190 positions the CPU kernel's query/key blocking would differ between a padded row and its batch-1
    run even with pads a multiple of its 16 lanes; row-by-row attention on the real keys is exact there too."""
    spec = {**SAMPLERS["parallel"], "cache": "prefix"}
    for rows in ragged_batches(seed=3, count=3, lengths=(150, 235)):
        batch = dvlm.generate(bf16_models[model], rows, sampler=spec)
        for b, row in enumerate(rows):
            single = dvlm.generate(bf16_models[model], [row], sampler=spec)
            assert batch.token_ids[b].tolist() == single.token_ids[0].tolist(), (b, len(row))


@pytest.mark.parametrize("pads", [3, 16, 37])
def test_left_padding_keeps_each_rows_logits_bit_for_bit(bf16_models, pads):
    """The backbone's default positions count real tokens, and the padded keys are left out of the row's
    attention: a padded row's logits are its batch-1 logits, bit for bit."""
    backbone = bf16_models["dream"]
    row = torch.randint(0, 240, (1, 21), generator=torch.Generator().manual_seed(0))
    padded = torch.cat([torch.full((1, pads), 251), row], dim=1)  # [1, pads + 21]
    padding = torch.cat([torch.zeros(1, pads, dtype=torch.long), torch.ones_like(row)], dim=1)
    with torch.no_grad():
        alone = backbone(row)
        in_batch = backbone(padded, attention_mask=padding)[:, pads:]
        shifted = backbone(padded, attention_mask=padding, position_ids=torch.arange(padded.shape[1])[None])
    # Dream's aligned row 0 is the head on the token before it (a pad in the batch): compare from row 1
    assert torch.equal(in_batch[:, 1:], alone[:, 1:])
    assert not torch.equal(shifted[:, pads + 1 :], alone[:, 1:])  # absolute positions: another bf16 answer
