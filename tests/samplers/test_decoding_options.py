"""Early stop, suppressed tokens, classifier-free guidance and temperature sampling."""

import pytest
import torch

import dvlm
from dvlm.core.generation import PromptBatch
from dvlm.plugins.samplers.canvas import Canvas
from dvlm.plugins.samplers.proposals import (
    gumbel_argmax,
    propose_dream,
    top_k_filter,
    top_p_filter,
)
from tests.samplers.conftest import prompts, with_tokens

MASK, EOS, EOT = 250, 251, 252
ONE_BLOCK = {"kind": "fixed_count", "gen_length": 16, "steps": 16, "block_length": 16}


@pytest.fixture(scope="module")
def eot_llada(llada):
    return with_tokens(llada, eot_token_id=EOT)


# -- early stop ------------------------------------------------------------------------------------------

def test_early_stop_at_a_fixed_end_of_turn_skips_everything_after_it(eot_llada):
    draft = torch.tensor([[MASK] * 6 + [EOT]])
    ids = prompts(1, 8, seed=11)
    full = dvlm.generate(eot_llada, ids, draft=draft, sampler=ONE_BLOCK)
    stopped = dvlm.generate(eot_llada, ids, draft=draft, sampler={**ONE_BLOCK, "early_stop": True})
    answer = stopped.token_ids[0].tolist()
    assert MASK not in answer[:6] and answer[6] == EOT
    assert answer[7:] == [EOS] * 9  # never generated: padding
    assert stopped.nfe == 6 < full.nfe == 15  # one forward per filled position, then stop
    assert stopped.answer_lengths == [7]


def test_early_stop_read_a_step_late_costs_one_forward_and_no_token(eot_llada, monkeypatch):
    """On CUDA early stop reads the previous step's flag (the host never waits for the step it launched); forced
    here on the CPU: the same tokens, one forward more."""
    import dvlm.plugins.samplers.canvas as canvas

    draft = torch.tensor([[MASK] * 6 + [EOT]])
    ids = prompts(2, 8, seed=11)
    spec = {**ONE_BLOCK, "early_stop": True}
    at_once = dvlm.generate(eot_llada, ids, draft=draft, sampler=spec)
    monkeypatch.setattr(canvas, "flag_lags", lambda flag: True)
    late = dvlm.generate(eot_llada, ids, draft=draft, sampler=spec)
    assert torch.equal(late.token_ids, at_once.token_ids) and late.answer_lengths == at_once.answer_lengths == [7, 7]
    assert late.nfe == at_once.nfe + 1 == 7


def test_early_stop_when_the_model_commits_the_end_token(llada):
    ids = prompts(1, 9, seed=12)
    baseline = dvlm.generate(llada, ids, sampler=ONE_BLOCK, trace=True)
    first = baseline.steps[0]
    position = int(first.committed[0].nonzero()[0, 0])
    token = int(first.tokens[0, position])
    assert position < 15  # otherwise this prompt tests nothing
    model = with_tokens(llada, eot_token_id=token)  # the first committed token plays end-of-turn
    stopped = dvlm.generate(model, ids, sampler={**ONE_BLOCK, "early_stop": True})
    answer = stopped.token_ids[0].tolist()
    stop = answer.index(token)  # the earliest end token: the answer ends there
    assert stop <= position and MASK not in answer[:stop]
    assert answer[stop + 1 :] == [EOS] * (15 - stop)  # anything committed after it is cut, as in LLaDA-V
    assert stopped.answer_lengths == [stop + 1] and stopped.nfe < baseline.nfe


def test_early_stop_in_a_batch_finishes_rows_independently(eot_llada):
    drafts = torch.tensor([[MASK] * 3 + [EOT] + [MASK] * 4, [MASK] * 8])
    result = dvlm.generate(eot_llada, prompts(2, 6, seed=13), draft=drafts,
                           sampler={**ONE_BLOCK, "early_stop": True, "suppress_tokens": ["eos", "eot"]})
    assert result.token_ids[0, 4:].tolist() == [EOS] * 12
    assert MASK not in result.token_ids[1].tolist() and EOS not in result.token_ids[1].tolist()
    assert result.answer_lengths == [4, 16]


# -- suppressed tokens -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fixed_count", "dream", "parallel"])
def test_suppressed_tokens_never_appear(llada, dream, kind):
    model = dream if kind == "dream" else llada
    spec = {"fixed_count": ONE_BLOCK, "dream": {"kind": "dream", "gen_length": 16, "steps": 16},
            "parallel": {"kind": "parallel", "gen_length": 16, "block_length": 8, "threshold": 0.3}}[kind]
    ids = prompts(2, 8, seed=14)
    free = dvlm.generate(model, ids, sampler=spec)
    common = torch.bincount(free.token_ids.flatten(), minlength=256).topk(3).indices.tolist()
    banned = dvlm.generate(model, ids, sampler={**spec, "suppress_tokens": [*common, "eos"]})
    assert not bool(torch.isin(banned.token_ids, torch.tensor(common + [EOS])).any())


def test_suppressing_by_role_name_needs_the_backbone_to_declare_the_role(llada):
    with pytest.raises(dvlm.DvlmError, match="declares no 'eot' token.*'eot\\?'"):
        dvlm.generate(llada, prompts(1, 4, seed=0), sampler={**ONE_BLOCK, "suppress_tokens": ["eot"]})
    result = dvlm.generate(llada, prompts(1, 4, seed=0), sampler={**ONE_BLOCK, "suppress_tokens": ["eot?"]})
    assert result.token_ids.shape == (1, 16)


def test_llada_v_preset_bans_its_special_tokens_and_stops_at_eot(eot_llada):
    result = dvlm.generate(eot_llada, prompts(2, 6, seed=15), sampler="llada-v",
                           overrides=["gen_length=16", "steps=16"])
    for row, length in zip(result.token_ids.tolist(), result.answer_lengths):
        assert EOS not in row[:length]  # eos is banned: only eot (or the length) ends an answer
        assert all(t == EOS for t in row[length:])


# -- classifier-free guidance ----------------------------------------------------------------------------

def test_cfg_zero_is_cfg_off_and_cfg_combines_conditional_and_prompt_masked_logits(llada):
    ids = prompts(1, 7, seed=16)
    off = dvlm.generate(llada, ids, sampler=ONE_BLOCK)
    zero = dvlm.generate(llada, ids, sampler={**ONE_BLOCK, "cfg_scale": 0.0})
    assert torch.equal(off.token_ids, zero.token_ids) and off.nfe == zero.nfe == 16
    guided = dvlm.generate(llada, ids, sampler={**ONE_BLOCK, "cfg_scale": 2.0})
    assert guided.nfe == 2 * off.nfe and not torch.equal(guided.token_ids, off.token_ids)
    canvas = Canvas(llada, PromptBatch(ids), 16, cfg_scale=2.0)
    with torch.no_grad():
        logits = canvas.forward(0, canvas.length)
        cond = llada(canvas.x)
        uncond = llada(torch.cat([torch.full_like(ids, MASK), canvas.x[:, 7:]], dim=1))
    torch.testing.assert_close(logits, uncond + 3.0 * (cond - uncond), atol=1e-4, rtol=1e-5)


def test_cfg_works_with_the_prefix_cache(llada):
    result = dvlm.generate(llada, prompts(2, 7, seed=17), sampler={**ONE_BLOCK, "cfg_scale": 1.0, "cache": "prefix"})
    assert result.nfe == 2 * (16 + 1) and MASK not in result.token_ids.flatten().tolist()


# -- temperature -----------------------------------------------------------------------------------------

def test_float64_gumbel_max_samples_softmax_over_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(40_000, 4)
    for temperature in (0.5, 1.0, 2.0):
        draws = gumbel_argmax(logits, temperature, torch.Generator().manual_seed(0))
        freq = torch.bincount(draws, minlength=4) / draws.numel()
        torch.testing.assert_close(freq, (logits[0] / temperature).softmax(-1), atol=0.01, rtol=0)


def test_top_k_and_top_p_restrict_what_can_be_drawn():
    logits = torch.tensor([[3.0, 2.5, 1.0, 0.5, -2.0]])
    assert (top_k_filter(logits, 2) > -1e30).tolist() == [[True, True, False, False, False]]
    # probs ~ [.50, .30, .06, .04, .003, ...]: the nucleus of 0.7 keeps the first two
    assert (top_p_filter(logits, 0.7) > -1e30).tolist() == [[True, True, False, False, False]]
    many = torch.tensor([[3.0, 2.5, 1.0, 0.5, -2.0]]).expand(5000, 5)
    x0, _ = propose_dream(many[None], torch.ones(1, 5000, dtype=torch.bool), temperature=1.0, top_p=None, top_k=2,
                          banned=None, confidence=lambda p, x, g: x.float(),
                          generator=torch.Generator().manual_seed(1))
    assert set(x0.flatten().tolist()) == {0, 1}


@pytest.mark.parametrize("spec", [
    {**ONE_BLOCK, "temperature": 1.0, "top_k": 20},
    {"kind": "dream", "gen_length": 16, "steps": 8, "temperature": 0.8, "top_p": 0.9},
    {"kind": "dream", "gen_length": 16, "steps": 8, "alg": "entropy", "alg_temp": 0.5},
    {"kind": "dream", "gen_length": 16, "steps": 8, "alg": "origin"},
    {**ONE_BLOCK, "confidence": "random"},
])
def test_sampling_is_reproducible_with_a_seeded_generator(llada, dream, spec):
    model = dream if spec["kind"] == "dream" else llada
    ids = prompts(2, 6, seed=18)
    runs = [dvlm.generate(model, ids, sampler=spec, generator=torch.Generator().manual_seed(s)).token_ids
            for s in (5, 5, 6)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert MASK not in runs[0].flatten().tolist()


def test_dream_alg_temp_with_early_stop_finishes_rows_without_crashing(dream):
    """Issue #14: once a row had no candidates left, softmax over nothing gave NaN and multinomial raised."""
    model = with_tokens(dream, eot_token_id=252)
    draft = torch.tensor([[MASK, MASK, 252] + [MASK] * 4, [MASK] * 6 + [252]])  # rows end after 2 and 6 tokens
    spec = {"kind": "dream", "gen_length": 16, "steps": 4, "alg": "entropy", "alg_temp": 0.5, "early_stop": True}
    result = dvlm.generate(model, prompts(2, 6, seed=30), draft=draft, sampler=spec,
                           generator=torch.Generator().manual_seed(0))
    assert result.answer_lengths == [3, 7]
    assert MASK not in result.token_ids.flatten().tolist()


def test_dream_alg_temp_draws_positions_in_proportion_to_softmax_confidence():
    """Gumbel-top-k: one position drawn from softmax(confidence / alg_temp) among the candidates."""
    from dvlm.plugins.samplers.dream import GumbelTopK

    rule = GumbelTopK(0.5, torch.Generator().manual_seed(0))
    confidence = torch.tensor([[0.0, 0.5, 1.0, 9.0]]).expand(20_000, 4)
    candidates = torch.tensor([[True, True, True, False]]).expand(20_000, 4)
    commit = rule(confidence, candidates, torch.ones(20_000, dtype=torch.long))
    assert bool((commit.sum(-1) == 1).all()) and not bool(commit[:, 3].any())
    expected = torch.softmax(torch.tensor([0.0, 0.5, 1.0]) / 0.5, dim=0)
    torch.testing.assert_close(commit[:, :3].float().mean(0), expected, atol=0.015, rtol=0)
