"""The approximate caches of the decoding zoo (dkv, drift_refresh, suffix_pruning) and the K/V-rows metric."""

import pytest
import torch

import dvlm
from dvlm.core.errors import DvlmError
from dvlm.core.generation import PromptBatch
from dvlm.plugins.samplers.canvas import Canvas
from dvlm.plugins.samplers.params import DelayedCacheParams, DriftRefreshCacheParams, SuffixPruningCacheParams
from dvlm.plugins.samplers.row_cache import RowKVCache, forward_rows
from dvlm.plugins.samplers.steps import build

from .conftest import prompts

MASK = 250


def canvas_of(backbone, prompt_length=5, gen_length=8, batch=2, seed=0):
    return Canvas(backbone, PromptBatch(prompts(batch, prompt_length, seed)), gen_length)


def test_rows_against_a_fresh_cache_are_exact(llada):
    """Recomputing answer rows against K/V written from the same canvas gives the full forward's logits."""
    canvas = canvas_of(llada)
    canvas.x[:, 7] = 3
    with torch.inference_mode():
        full = canvas.forward(0, canvas.length)
        cache = RowKVCache(canvas.new_cache())
        canvas.forward(0, canvas.length, cache=cache, attend_end=canvas.length)
        rows = torch.tensor([[12, 6, 9], [5, 11, 8]])
        logits = forward_rows(canvas, cache, rows)
    assert torch.allclose(logits, full.gather(1, rows[..., None].expand(-1, -1, full.shape[-1])), atol=1e-5)


def test_dkv_recomputes_masks_and_last_steps_tokens_once(llada):
    """Step 1: full forward (13 rows each). Commit position 6 -> step 2 recomputes the 7 masks + position 6;
    step 3 (nothing new committed) recomputes the 7 masks only: 6's K/V were cached one step late."""
    canvas = canvas_of(llada)
    policy = build("cache_policies", DelayedCacheParams(refresh_interval=None))
    with torch.inference_mode():
        policy.start(canvas)
        logits, offset = policy.logits(canvas, 5, 13, True)
        assert offset == 5 and logits.shape[:2] == (2, 8) and canvas.kv_rows_recomputed == 2 * 13  # block rows only
        canvas.x[:, 6] = 3
        logits, offset = policy.logits(canvas, 5, 13, False)
        assert offset == 5 and logits.shape[:2] == (2, 8) and canvas.kv_rows_recomputed == 2 * 13 + 2 * 8
        policy.logits(canvas, 5, 13, False)
        assert canvas.kv_rows_recomputed == 2 * 13 + 2 * 8 + 2 * 7 and canvas.nfe == 3
    policy = build("cache_policies", DelayedCacheParams(refresh_interval=2))
    fresh = canvas_of(llada)
    with torch.inference_mode():
        policy.start(fresh)
        for _ in range(3):
            policy.logits(fresh, 5, 13, False)
    assert fresh.kv_rows_recomputed == 2 * 13 + 2 * 8 + 2 * 13  # steps 1 and 3 refresh


@pytest.mark.parametrize("similarity, refreshes", [(1.01, 3), (-1.0, 1)])
def test_drift_refresh_follows_the_key_similarity(llada, similarity, refreshes):
    """Similarity above any cosine: every step after a selective one refreshes; below any: never (one block)."""
    canvas = canvas_of(llada)
    policy = build("cache_policies", DriftRefreshCacheParams.model_construct(kind="drift_refresh",
                                                                            similarity=similarity))
    full = 0
    with torch.inference_mode():
        policy.start(canvas)
        for step in range(5):
            before = canvas.kv_rows_recomputed
            policy.logits(canvas, 5, 13, step == 0)
            full += canvas.kv_rows_recomputed - before == 2 * 13
            canvas.x[:, 5 + step] = 3
    assert full == refreshes


def test_drift_refresh_opens_each_block_with_a_full_forward(llada):
    canvas = canvas_of(llada)
    policy = build("cache_policies", DriftRefreshCacheParams(similarity=-1.0))
    with torch.inference_mode():
        policy.start(canvas)
        for start, refresh in [(5, True), (5, False), (9, True)]:
            before = canvas.kv_rows_recomputed
            _, offset = policy.logits(canvas, start, start + 4, refresh)
            assert (canvas.kv_rows_recomputed - before == 2 * 13) == refresh and offset == start
            canvas.x[:, start] = 3


def test_suffix_pruning_keeps_the_window_and_the_draft(llada):
    """Block [5, 7) with keep 2: the forward runs [5, 9) against the prompt (4 rows, not 8). A draft whose last
    fixed token sits at answer position 6 stretches the window to 12."""
    policy = build("cache_policies", SuffixPruningCacheParams(keep=2))
    canvas = canvas_of(llada)
    with torch.inference_mode():
        policy.start(canvas)
        assert canvas.kv_rows_recomputed == 2 * 5
        logits, offset = policy.logits(canvas, 5, 7, True)
    assert offset == 5 and logits.shape[1] == 2 and canvas.kv_rows_recomputed == 2 * 5 + 2 * 4  # the block's rows
    draft = torch.tensor([MASK] * 6 + [9])
    canvas = Canvas(llada, PromptBatch(prompts(2, 5, 0), draft=draft), 8)
    with torch.inference_mode():
        policy.start(canvas)
        logits, offset = policy.logits(canvas, 5, 7, True)
    assert logits.shape[1] == 2 and canvas.kv_rows_recomputed == 2 * 5 + 2 * 7  # the forward still runs [5, 12)


def test_suffix_pruning_with_a_long_window_is_the_prefix_cache(llada):
    ids = prompts(2, 6, 3)
    exact = dvlm.generate(llada, input_ids=ids, sampler={"kind": "fixed_count", "gen_length": 16, "steps": 8,
                                                        "block_length": 8, "cache": "prefix"})
    pruned = dvlm.generate(llada, input_ids=ids, sampler={"kind": "fixed_count", "gen_length": 16, "steps": 8,
                                                         "block_length": 8, "cache": {"kind": "suffix_pruning",
                                                                                      "keep": 8}})
    assert torch.equal(exact.token_ids, pruned.token_ids)  # keep 8 reaches the end from block 1 on
    assert pruned.kv_rows_recomputed == exact.kv_rows_recomputed == 6 + 8 * 16
    short = dvlm.generate(llada, input_ids=ids, sampler={"kind": "fixed_count", "gen_length": 16, "steps": 8,
                                                        "block_length": 8, "cache": {"kind": "suffix_pruning",
                                                                                     "keep": 2}})
    assert short.kv_rows_recomputed == 6 + 4 * 10 + 4 * 16  # block 1 runs [P, P + 10), block 2 the whole answer


def test_kv_rows_recomputed_in_the_result_and_events(llada):
    """No cache: every step computes all P + G rows; the exact prefix cache: P once, then G per step."""
    ids = prompts(2, 5, 1)
    sampler = {"kind": "fixed_count", "gen_length": 8, "steps": 4, "block_length": 8}
    full = dvlm.generate(llada, input_ids=ids, sampler=sampler, trace=True)
    assert full.kv_rows_recomputed == 4 * 13 and full.steps[-1].kv_rows == 2 * 4 * 13
    prefix = dvlm.generate(llada, input_ids=ids, sampler={**sampler, "cache": "prefix"})
    assert prefix.kv_rows_recomputed == 5 + 4 * 8


@pytest.mark.parametrize("cache", ["dkv", "drift_refresh"])
def test_selective_caches_generate_and_refuse_what_they_cannot_serve(llada, dream, cache):
    result = dvlm.generate(llada, input_ids=prompts(2, 5, 2), sampler={
        "kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8, "cache": cache})
    assert not (result.token_ids == MASK).any() and result.nfe == 8
    assert result.kv_rows_recomputed < 8 * 21  # fewer rows than a full recompute
    with pytest.raises(DvlmError, match="shifted"):
        dvlm.generate(dream, input_ids=prompts(1, 5, 2), sampler={"kind": "dream", "gen_length": 8, "steps": 4,
                                                                  "cache": cache})
    with pytest.raises(DvlmError, match="cfg_scale"):
        dvlm.generate(llada, input_ids=prompts(1, 5, 2), sampler={"kind": "fixed_count", "gen_length": 8,
                                                                  "steps": 4, "cfg_scale": 1.0, "cache": cache})
