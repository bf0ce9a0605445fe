"""Commit rules and confidence measures: reference rule fixtures, loop-based references, vectorisation."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dvlm
from dvlm.plugins.samplers.commit import factor_accept
from dvlm.plugins.samplers.params import (
    FactorRuleParams,
    FixedCountRuleParams,
    MarginParams,
    NegEntropyParams,
    ProbabilityParams,
    RandomConfidenceParams,
    ThresholdRuleParams,
)
from tests.samplers.conftest import schedules_fixture

FIXTURE = schedules_fixture()


def build(family, params):
    return dvlm.registry().build(family, params)


def one_row(confidences):
    conf = torch.tensor([confidences], dtype=torch.float64)
    return conf, torch.ones_like(conf, dtype=torch.bool)


@pytest.mark.parametrize("case", FIXTURE["fast_dllm_threshold_rule"]["cases"], ids=str)
def test_threshold_rule_matches_fast_dllm(case):
    conf, candidates = one_row(case["confidences_sorted_desc"])
    commit = build("commit_rules", ThresholdRuleParams(threshold=case["threshold"]))(conf, candidates, None)
    assert int(commit.sum()) == case["num_accepted"]
    assert bool(commit[0, 0])  # the most confident is always taken


@pytest.mark.parametrize("case", FIXTURE["llada_v_factor_rule"]["cases"], ids=str)
def test_factor_rule_matches_llada_v_hook(case):
    # the hook ranks every masked position; those after the block carry confidence -inf
    beyond = case["masked_positions_after_block_end"]
    ranked = torch.tensor([case["confidences_sorted_desc"] + [-math.inf] * beyond], dtype=torch.float64)
    accepted = factor_accept(ranked, torch.tensor([ranked.shape[1]]), case["threshold"])
    assert accepted.tolist() == [case["num_accepted"]]
    # the commit rule over the block's candidates agrees on every fixture case
    conf, candidates = one_row(case["confidences_sorted_desc"])
    commit = build("commit_rules", FactorRuleParams(factor=case["threshold"]))(conf, candidates, None)
    assert int(commit.sum()) == case["num_accepted"]


def loop_threshold(conf, candidates, tau):
    """Fast-dLLM's per-row, per-candidate loop (the reference shape the vectorised rule replaces)."""
    out = torch.zeros_like(candidates)
    for b in range(conf.shape[0]):
        scores = conf[b].masked_fill(~candidates[b], -math.inf)
        n = int(candidates[b].sum())
        if n == 0:
            continue
        order = scores.argsort(descending=True, stable=True)[:n]
        out[b, order[0]] = True
        for i in order[1:]:
            if scores[i] >= tau:
                out[b, i] = True
    return out


def loop_factor(conf, candidates, f):
    """Fast-dLLM ``get_transfer_index_dynamic`` per row, with its last-index quirk."""
    out = torch.zeros_like(candidates)
    for b in range(conf.shape[0]):
        n = int(candidates[b].sum())
        if n == 0:
            continue
        scores = conf[b].masked_fill(~candidates[b], -math.inf)
        order = scores.argsort(descending=True, stable=True)[:n]
        thresholds = [-1.0] + [1 - f / (k + 1) for k in range(2, n + 1)]
        top = n - 1
        for i in range(n):
            if scores[order[i]] < thresholds[i]:
                top = i
                break
        if top == 0 or top == n - 1:
            top += 1
        out[b, order[:top]] = True
    return out


rows = st.integers(1, 4)
width = st.integers(1, 12)


@settings(max_examples=80, deadline=None)
@given(b=rows, n=width, seed=st.integers(0, 10_000), tau=st.floats(0.05, 0.99), f=st.floats(0.1, 3.0))
def test_vectorised_rules_equal_the_reference_loops(b, n, seed, tau, f):
    g = torch.Generator().manual_seed(seed)
    conf = torch.rand(b, n, generator=g, dtype=torch.float64)
    candidates = torch.rand(b, n, generator=g) < 0.7
    threshold = build("commit_rules", ThresholdRuleParams(threshold=tau))(conf, candidates, None)
    factor = build("commit_rules", FactorRuleParams(factor=f))(conf, candidates, None)
    assert torch.equal(threshold, loop_threshold(conf, candidates, tau))
    assert torch.equal(factor, loop_factor(conf, candidates, f))
    for commit in (threshold, factor):
        assert not bool((commit & ~candidates).any())
        assert torch.equal(commit.any(-1), candidates.any(-1))  # at least one token per step where possible


@settings(max_examples=50, deadline=None)
@given(b=rows, n=width, seed=st.integers(0, 10_000))
def test_fixed_count_commits_the_k_most_confident_candidates(b, n, seed):
    g = torch.Generator().manual_seed(seed)
    conf = torch.rand(b, n, generator=g, dtype=torch.float64)
    candidates = torch.rand(b, n, generator=g) < 0.7
    count = torch.randint(0, n + 1, (b,), generator=g)
    commit = build("commit_rules", FixedCountRuleParams())(conf, candidates, count)
    for r in range(b):
        k = min(int(count[r]), int(candidates[r].sum()))
        assert int(commit[r].sum()) == k
        if k:
            chosen = conf[r][commit[r]]
            others = conf[r][candidates[r] & ~commit[r]]
            assert others.numel() == 0 or chosen.min() >= others.max()


def test_confidence_measures():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    chosen = torch.tensor([1, 2])
    measure = lambda p: build("confidence_measures", p)  # noqa: E731
    assert torch.allclose(measure(ProbabilityParams())(probs, chosen), torch.tensor([0.2, 0.6]))
    assert torch.allclose(measure(MarginParams())(probs, chosen), torch.tensor([0.5, 0.3]))
    expected = (probs * torch.log(probs + 1e-10)).sum(-1)
    assert torch.allclose(measure(NegEntropyParams())(probs, chosen), expected)
    random = measure(RandomConfidenceParams())
    a = random(None, chosen, torch.Generator().manual_seed(3))
    b = random(None, chosen, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == chosen.shape and bool(((a >= 0) & (a < 1)).all())


def test_reference_names_are_aliases_of_the_measures():
    registry = dvlm.registry()
    assert registry.get("confidence_measures", "low_confidence").kind == "probability"
    assert registry.get("confidence_measures", "topk_margin").kind == "margin"
    assert registry.get("confidence_measures", "entropy").kind == "neg_entropy"
