"""``commit_rule: {kind: ...}`` in a sampler spec is honoured by every sampler, through the shared loop (#13)."""

import pytest
import torch

import dvlm
from dvlm.core.errors import SpecError
from dvlm.core.sampler_specs import resolve_sampler
from tests.samplers.conftest import prompts

MASK = 250
SAMPLERS = {
    "fixed_count": {"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8},
    "dream": {"kind": "dream", "gen_length": 16, "steps": 8, "alg": "maskgit_plus"},
    "parallel": {"kind": "parallel", "gen_length": 16, "block_length": 8},
}
BLOCKS = {"fixed_count": 2, "dream": 1, "parallel": 2}


def model_for(kind, llada, dream):
    return dream if kind == "dream" else llada


@pytest.mark.parametrize("cache", ["none", "prefix"])
@pytest.mark.parametrize("kind", SAMPLERS)
def test_a_commit_everything_rule_fills_each_block_in_one_step(llada, dream, kind, cache):
    spec = {**SAMPLERS[kind], "cache": cache, "commit_rule": {"kind": "threshold", "threshold": 0.0}}
    result = dvlm.generate(model_for(kind, llada, dream), prompts(2, 6, seed=40), sampler=spec, trace=True)
    assert len(result.steps) == BLOCKS[kind]  # one step per block: the rule, not the sampler's own, decided
    assert MASK not in result.token_ids.flatten().tolist()


@pytest.mark.parametrize("kind", ["fixed_count", "dream"])
def test_a_rule_that_commits_less_than_planned_still_fills_the_answer(llada, dream, kind):
    """threshold 1.0 commits only the most confident position per step: past the 8 planned steps, the loop goes on
    until every block is filled (16 steps for 16 positions)."""
    spec = {**SAMPLERS[kind], "commit_rule": {"kind": "threshold", "threshold": 1.0}}
    result = dvlm.generate(model_for(kind, llada, dream), prompts(1, 6, seed=41), sampler=spec, trace=True)
    assert [int(e.committed.sum()) for e in result.steps] == [1] * 16
    assert MASK not in result.token_ids.flatten().tolist()


def test_the_fixed_count_rule_as_commit_rule_is_the_default_behaviour(llada):
    ids = prompts(2, 7, seed=42)
    default = dvlm.generate(llada, ids, sampler=SAMPLERS["fixed_count"])
    explicit = dvlm.generate(llada, ids, sampler={**SAMPLERS["fixed_count"], "commit_rule": "fixed_count"})
    assert torch.equal(default.token_ids, explicit.token_ids) and default.nfe == explicit.nfe


def test_parallel_threshold_and_factor_are_shorthands_for_its_commit_rule(llada):
    ids = prompts(1, 6, seed=43)
    short = dvlm.generate(llada, ids, sampler={**SAMPLERS["parallel"], "factor": 2.0})
    rule = {"kind": "factor", "factor": 2.0}
    given = dvlm.generate(llada, ids, sampler={**SAMPLERS["parallel"], "commit_rule": rule})
    assert torch.equal(short.token_ids, given.token_ids) and short.nfe == given.nfe
    as_rule = resolve_sampler({**SAMPLERS["parallel"], "threshold": 0.5})
    assert (as_rule.commit_rule.kind, as_rule.commit_rule.threshold, as_rule.threshold) == ("threshold", 0.5, None)
    assert dvlm.spec_hash(as_rule) == dvlm.spec_hash(resolve_sampler(
        {**SAMPLERS["parallel"], "commit_rule": {"kind": "threshold", "threshold": 0.5}}))
    assert resolve_sampler("fast-dllm", ["commit_rule=factor"]).commit_rule.kind == "factor"
    with pytest.raises(SpecError, match="set the commit rule once"):
        resolve_sampler({**SAMPLERS["parallel"], "threshold": 0.5, "commit_rule": "threshold"})


def test_dream_refuses_a_commit_rule_beside_its_own_position_pickers():
    for extra in ({"alg": "origin"}, {"alg_temp": 0.5}):
        with pytest.raises(SpecError, match="commit_rule picks the positions"):
            resolve_sampler({**SAMPLERS["dream"], **extra, "commit_rule": "threshold"})


def test_an_unknown_commit_rule_suggests_the_closest(llada):
    with pytest.raises(SpecError, match="did you mean 'threshold'|Did you mean 'threshold'"):
        resolve_sampler(SAMPLERS["fixed_count"], ["commit_rule=treshold"])
