"""Cache policies: the exact prefix cache equals a full recompute under the Prefix-DLM mask; the Fast-dLLM
caches run shorter windows, reduce to full recompute when a block takes one step, and fill every mask."""

from typing import Literal

import pytest
import torch

import dvlm
from dvlm.core.attention import prefix_lm_mask
from dvlm.core.generation import PromptBatch, run_sampler
from dvlm.core.plugins import add_plugin, remove_plugin
from dvlm.core.sampler_specs import resolve_sampler
from dvlm.core.specs import ComponentParams
from tests.samplers.conftest import prompts


class PrefixLmRecompute:
    """Full recompute of the whole sequence under the Prefix-DLM mask (prompt never sees the answer)."""

    name = "prefix_lm_recompute"

    def __init__(self, params=None):
        pass

    def start(self, canvas):
        pass

    def logits(self, canvas, block_start, block_end, refresh):
        lengths = torch.full((canvas.batch_size,), canvas.prompt_length)
        mask = prefix_lm_mask(lengths, canvas.length, canvas.key_padding)
        canvas.nfe += 1
        return canvas.backbone(canvas.x, attention_mask=mask), 0


class PrefixLmRecomputeParams(ComponentParams):
    kind: Literal["prefix_lm_recompute"] = "prefix_lm_recompute"


class ReferencePolicies:
    @dvlm.hookimpl
    def dvlm_register_cache_policies(self, register):
        register("prefix_lm_recompute", PrefixLmRecompute, PrefixLmRecomputeParams)


@pytest.fixture
def recompute_policy():
    add_plugin(ReferencePolicies(), name="reference_policies")
    try:
        yield
    finally:
        remove_plugin("reference_policies")


def generate(model, ids, attention_mask=None, **spec):
    spec = {"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8, **spec}
    return run_sampler(model, PromptBatch(ids, attention_mask), resolve_sampler(spec), trace=True)


@pytest.mark.parametrize("schedule", ["linear", "shift"])
def test_exact_prefix_cache_equals_prefix_lm_full_recompute(llada, recompute_policy, schedule):
    ids = prompts(2, 11, seed=0)
    padding = torch.ones_like(ids)
    padding[1, :3] = 0  # a ragged row
    cached = generate(llada, ids, padding, cache="prefix", schedule=schedule)
    recomputed = generate(llada, ids, padding, cache="prefix_lm_recompute", schedule=schedule)
    assert torch.equal(cached.token_ids, recomputed.token_ids)
    assert cached.nfe == recomputed.nfe + 1  # the prefill
    full = generate(llada, ids, padding, cache="none", schedule=schedule)
    assert not torch.equal(full.token_ids, cached.token_ids)  # the mask matters: not a vacuous comparison


def test_prefix_cache_logits_equal_the_masked_full_forward(llada):
    from dvlm.plugins.samplers.cache_policies import PrefixCache
    from dvlm.plugins.samplers.canvas import Canvas

    ids = prompts(1, 9, seed=1)
    canvas = Canvas(llada, PromptBatch(ids), 12)
    policy = PrefixCache()
    with torch.no_grad():
        policy.start(canvas)
        cached, offset = policy.logits(canvas, 9, 21, True)
        mask = prefix_lm_mask(torch.tensor([9]), canvas.length)
        full = llada(canvas.x, attention_mask=mask)[:, offset:]
    assert offset == 9
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-5)


def count_window_tokens(model):
    sizes = []

    def record(module, args, kwargs):
        inputs = args[0] if args and args[0] is not None else kwargs["inputs_embeds"]
        sizes.append(inputs.shape[1])

    return sizes, model.register_forward_pre_hook(record, with_kwargs=True)


@pytest.mark.parametrize("cache", ["fast_dllm_prefix", "dual"])
def test_fast_dllm_caches_with_one_step_per_block_equal_full_recompute(llada, cache):
    ids = prompts(1, 10, seed=2)
    full = generate(llada, ids, gen_length=24, steps=3, block_length=8)
    cached = generate(llada, ids, gen_length=24, steps=3, block_length=8, cache=cache)
    assert torch.equal(full.token_ids, cached.token_ids)


@pytest.mark.parametrize("cache,expected", [
    ("none", [34] * 6),
    ("prefix", [10] + [24] * 6),
    ("fast_dllm_prefix", [34, 24, 24, 34, 12, 12]),  # block start refresh, then [block_start, N)
    ("dual", [34, 12, 12, 34, 12, 12]),  # block start refresh, then the block alone
])
def test_windows_each_policy_runs(llada, cache, expected):
    sizes, handle = count_window_tokens(llada)
    try:
        result = generate(llada, prompts(1, 10, seed=3), gen_length=24, steps=6, block_length=12, cache=cache)
    finally:
        handle.remove()
    assert sizes == expected  # prompt 10 + answer 24 = 34 positions; blocks of 12, 3 steps each
    assert result.nfe == len(sizes)
    assert not bool((result.token_ids == llada.special_tokens.mask_id).any())


@pytest.mark.parametrize("cache", ["fast_dllm_prefix", "dual", "prefix"])
def test_parallel_and_dream_samplers_run_with_every_cache(llada, dream, cache):
    ids = prompts(2, 7, seed=4)
    out = run_sampler(llada, PromptBatch(ids), resolve_sampler(
        {"kind": "parallel", "gen_length": 16, "block_length": 8, "threshold": 0.3, "cache": cache}))
    assert not bool((out.token_ids == 250).any())
    out = run_sampler(dream, PromptBatch(ids), resolve_sampler(
        {"kind": "dream", "gen_length": 16, "steps": 8, "alg": "topk_margin", "cache": cache}))
    assert not bool((out.token_ids == 250).any())
