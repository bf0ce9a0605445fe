"""Batches: ragged prompts (left padding) and ragged completion give the tokens of batch 1, greedy."""

import pytest

import dvlm
from tests.samplers.conftest import prompts

SPECS = {
    "fixed_count": {"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8},
    "fixed_count_prefix_shift": {"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8,
                                 "cache": "prefix", "schedule": "shift"},
    "fixed_count_margin_dual": {"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8,
                                "confidence": "margin", "cache": "dual"},
    "parallel_threshold": {"kind": "parallel", "gen_length": 16, "block_length": 8, "threshold": 0.2},
    "parallel_factor_fast_dllm_prefix": {"kind": "parallel", "gen_length": 16, "block_length": 8, "factor": 2.0,
                                         "cache": "fast_dllm_prefix"},
}
DREAM_SPECS = {
    "dream_entropy": {"kind": "dream", "gen_length": 16, "steps": 8, "alg": "entropy"},
    "dream_prefix_margin": {"kind": "dream", "gen_length": 16, "steps": 8, "alg": "topk_margin", "cache": "prefix"},
}
LENGTHS = [9, 4, 12, 7]


def ragged_rows(seed):
    ids = prompts(len(LENGTHS), max(LENGTHS), seed)
    return [ids[b, : n].tolist() for b, n in enumerate(LENGTHS)]


def check_batch_equals_singles(model, spec):
    rows = ragged_rows(seed=5)
    batch = dvlm.generate(model, rows, sampler=spec)
    for b, row in enumerate(rows):
        single = dvlm.generate(model, [row], sampler=spec)
        assert batch.token_ids[b].tolist() == single.token_ids[0].tolist(), f"row {b}"
    return batch


@pytest.mark.parametrize("name", SPECS)
def test_llada_batch_of_4_ragged_equals_batch_of_1(llada, name):
    check_batch_equals_singles(llada, SPECS[name])


@pytest.mark.parametrize("name", DREAM_SPECS)
def test_dream_batch_of_4_ragged_equals_batch_of_1(dream, name):
    check_batch_equals_singles(dream, DREAM_SPECS[name])


def test_parallel_rows_complete_blocks_at_different_steps(llada):
    rows = ragged_rows(seed=6)
    result = dvlm.generate(llada, rows, sampler=SPECS["parallel_threshold"], trace=True)
    per_row_steps = [sum(bool(e.committed[b].any()) for e in result.steps) for b in range(len(rows))]
    assert len(set(per_row_steps)) > 1, per_row_steps  # ragged completion actually happened
    assert max(per_row_steps) == len(result.steps) == result.nfe
    assert not bool((result.token_ids == llada.special_tokens.mask_id).any())
