"""The LM head runs only on the rows a step samples (#15): the prefill computes no logits, every cache policy
asks for the current block's rows, and LaViDa-Dream's first answer token needs no extra forward."""

import pytest
import torch

from dvlm.core.generation import PromptBatch, run_sampler
from dvlm.core.sampler_specs import resolve_sampler
from tests.samplers.conftest import prompts


def record_head_rows(model):
    """Rows (per batch row) of every LM head call; restore with the returned handle's ``remove()``."""
    rows = []
    handle = model.lm_head.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[-2]))
    return rows, handle


@pytest.mark.parametrize("cache", ["none", "prefix", "fast_dllm_prefix", "dual"])
def test_every_step_projects_only_its_block(llada, cache):
    rows, handle = record_head_rows(llada)
    spec = {"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8, "cache": cache}
    try:
        result = run_sampler(llada, PromptBatch(prompts(2, 11, seed=3)), resolve_sampler(spec))
    finally:
        handle.remove()
    prefill = [0] if cache == "prefix" else []  # the prefix prefill fills the cache, its head sees no row
    assert rows == prefill + [8] * (result.nfe - len(prefill))


def test_block_rows_equal_the_full_logits_rows(llada, dream):
    ids = prompts(2, 9, seed=4)
    for model in (llada, dream):
        full = model(ids)
        torch.testing.assert_close(model(ids, rows=slice(3, 7)), full[:, 3:7], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(ids, rows=slice(0, 2)), full[:, 0:2], rtol=1e-5, atol=1e-5)
        assert model(ids, rows=slice(5, 5)).shape == (2, 0, model.vocab_size)


def test_dream_cached_window_rows_start_from_the_kept_hidden_state(dream):
    from dvlm.core.attention import prefix_lm_mask

    ids = prompts(1, 12, seed=5)
    cache = dream.new_cache(1, 12)
    dream(ids[:, :7], cache=cache, rows=slice(0, 0))  # prefill: no logits, hidden states kept
    window = dream(ids[:, 7:], cache=cache, cache_start=7, attend_end=12, rows=slice(0, 3))  # [1, 3, V]
    prefix_lm = dream(ids, attention_mask=prefix_lm_mask(torch.tensor([7]), 12))  # [1, 12, V]
    torch.testing.assert_close(window, prefix_lm[:, 7:10], rtol=1e-5, atol=1e-5)
    # row 0 of the window is the head on the prefill's last hidden state: the prediction for position 7
    torch.testing.assert_close(window[:, 0], dream.head(cache.hidden_before(7))[:, 0], rtol=1e-5, atol=1e-5)


def test_lavida_dream_prefix_runs_no_extra_forward_for_its_first_token(dream):
    spec = {"kind": "dream", "gen_length": 16, "steps": 16, "alg": "topk_margin", "cache": "prefix"}
    result = run_sampler(dream, PromptBatch(prompts(1, 10, seed=6)), resolve_sampler(spec), trace=True)
    assert result.nfe == 1 + len(result.steps)  # the prefill, then one forward per step: the reference's count
