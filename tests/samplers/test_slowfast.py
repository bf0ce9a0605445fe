"""SlowFast sampling (``slowfast``): its phase rule on constructed confidences, and a generation."""

import pytest
import torch

from dvlm.core.errors import DvlmError
from dvlm.core.sampler_specs import resolve_sampler
from dvlm.plugins.samplers.params import SlowFastSamplerParams
from dvlm.plugins.samplers.slowfast import SlowFastRule


def rule_for(batch: int = 1, **overrides) -> SlowFastRule:
    rule = SlowFastRule(SlowFastSamplerParams(gen_length=8, **overrides))
    rule.start_block(torch.full((batch,), 8))
    return rule


def test_slow_phase_commits_one_then_turns_fast_on_a_stable_span():
    """Step 1: the farthest position with confidence >= 0.3 is 3 -> estimate 4; only one candidate >= 0.9, so
    the top one (position 0) is committed. Step 2: the estimate is 4 again -> std 0 < 1: fast, span [0, 4).
    Step 3 (fast): candidates 1, 2 >= 0.9 -> both; position 5 (0.95) lies outside the span and waits."""
    rule = rule_for()
    confidence = torch.tensor([[0.95, 0.5, 0.4, 0.35, 0.1, 0.2, 0.1, 0.1]])
    candidates = torch.ones(1, 8, dtype=torch.bool)
    assert rule(confidence, candidates).nonzero()[:, 1].tolist() == [0]
    assert not rule.fast.item()
    candidates[0, 0] = False
    confidence = torch.tensor([[0.0, 0.6, 0.5, 0.4, 0.1, 0.2, 0.1, 0.1]])
    assert rule(confidence, candidates).nonzero()[:, 1].tolist() == [1]
    assert rule.fast.item() and rule.span_end.item() == 4
    candidates[0, 1] = False
    confidence = torch.tensor([[0.0, 0.0, 0.92, 0.91, 0.1, 0.95, 0.1, 0.1]])
    assert rule(confidence, candidates).nonzero()[:, 1].tolist() == [2, 3]
    candidates[0, 2:4] = False  # span filled: the next call moves the prefix to 4 and explores again
    rule(torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.2, 0.99, 0.1, 0.1]]), candidates)
    assert rule.done.item() == 4 and not rule.fast.item()


def test_unstable_estimates_fix_the_span_after_exploration():
    """Estimates 8, 5, 8, 5 never converge (std 1.5 over the window of 2): after 4 exploration steps the span
    end is the mean of the last two, int(6.5) = 6."""
    rule = rule_for(exploration_steps=4)
    candidates = torch.ones(1, 8, dtype=torch.bool)
    for step, far in enumerate([7, 4, 7, 4]):
        confidence = torch.full((1, 8), 0.1)
        confidence[0, far] = 0.5
        confidence[0, step] = 0.8  # the one committed this step
        commit = rule(confidence, candidates)
        assert commit.nonzero()[:, 1].tolist() == [step]
        candidates &= ~commit
        assert rule.fast.item() == (step == 3)
    assert rule.span_end.item() == 6


def test_rows_are_independent():
    rule = rule_for(batch=2)
    confidence = torch.tensor([[0.95, 0.93, 0.1, 0.1], [0.2, 0.1, 0.3, 0.1]])
    candidates = torch.tensor([[True, True, True, True], [False, True, True, True]])
    commit = rule(confidence, candidates)
    assert commit.tolist() == [[True, True, False, False], [False, False, True, False]]


def test_generates_and_validates(llada):
    import dvlm

    result = dvlm.generate(llada, input_ids=[[1, 2, 3], [4, 5]], sampler={"kind": "slowfast", "gen_length": 16,
                                                                               "block_length": 8}, trace=True)
    assert not (result.token_ids == llada.special_tokens.mask_id).any()
    assert torch.stack([e.committed for e in result.steps]).sum(0).max() == 1
    with pytest.raises(DvlmError, match="exploration_steps"):
        resolve_sampler({"kind": "slowfast", "stability_window": 7})
    with pytest.raises(DvlmError, match="commit_rule"):
        resolve_sampler({"kind": "slowfast", "commit_rule": "threshold"})
