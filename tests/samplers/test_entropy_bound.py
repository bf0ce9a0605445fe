"""EB-Sampler's rule (``entropy_bound``): parity with transformers' ``EntropyBoundSampler.accept_canvas`` on
random logits, a constructed case, and the confidence check."""

import pytest
import torch

import dvlm
from dvlm.core.errors import DvlmError
from dvlm.core.sampler_specs import resolve_sampler
from dvlm.plugins.samplers.confidence import NegEntropy
from dvlm.plugins.samplers.params import EntropyBoundRuleParams
from dvlm.plugins.samplers.proposals import propose_llada
from dvlm.plugins.samplers.steps import build

diffusion_gemma = pytest.importorskip("transformers.models.diffusion_gemma.generation_diffusion_gemma")


def transformers_accepts(logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """transformers' own rule on ``logits [B, N, V]``: which positions ``accept_canvas`` accepts ``[B, N]``."""
    batch, length, vocab = logits.shape
    sampler = diffusion_gemma.EntropyBoundSampler(
        diffusion_gemma.EntropyBoundSamplerConfig(entropy_bound=gamma), length, vocab, max_denoising_steps=1)
    current = torch.zeros(batch, length, dtype=torch.long)
    sampler.accept_canvas(current, current + 1, logits, cur_step=0)
    return sampler.accepted_token_mask


def well_separated(entropy: torch.Tensor, gamma: float, gap: float = 1e-4) -> bool:
    """No partial sum near gamma and no near-tie across the accept/reject boundary (float rounding could flip
    either; ties on one side of the boundary change nothing)."""
    ordered = entropy.sort(-1).values  # [B, N]
    partial = ordered.cumsum(-1) - ordered  # [B, N], nondecreasing
    accepted = (partial <= gamma).sum(-1)  # [B] >= 1
    last, first_out = ordered.gather(-1, (accepted - 1)[:, None]), ordered.gather(
        -1, accepted.clamp(max=ordered.shape[-1] - 1)[:, None])
    straddle = (accepted < ordered.shape[-1]) & ((first_out - last).squeeze(-1) <= gap)
    return bool(((partial - gamma).abs() > gap).all()) and not bool(straddle.any())


@pytest.mark.parametrize("shape", [(1, 1, 7), (1, 6, 11), (2, 8, 32), (3, 16, 50), (4, 33, 97), (2, 64, 256)])
def test_same_positions_as_transformers(shape):
    """dvlm's path (logits -> LLaDA proposal with the neg_entropy measure -> entropy_bound rule) accepts exactly
    the positions transformers' function accepts, over every position as its canvas does."""
    g = torch.Generator().manual_seed(sum(shape))
    rule = build("commit_rules", EntropyBoundRuleParams(gamma=1.0))
    compared = 0
    for trial in range(40):
        logits = torch.randn(shape, generator=g) * float(torch.empty(()).uniform_(0.5, 6.0, generator=g))
        gamma = float(torch.empty(()).uniform_(0.05, 3.0, generator=g))
        entropy = torch.distributions.Categorical(logits=logits).entropy()
        if not well_separated(entropy, gamma):
            continue
        rule.gamma = gamma
        candidates = torch.ones(shape[:2], dtype=torch.bool)
        _, confidence = propose_llada(logits, candidates, temperature=0.0, top_p=None, top_k=None, banned=None,
                                      confidence=NegEntropy(), generator=None)
        expected = transformers_accepts(logits, gamma)
        assert torch.equal(rule(confidence, candidates, None), expected), (shape, trial, gamma)
        compared += 1
    assert compared >= 10  # the exclusions must not empty the test


def test_constructed_entropies():
    """Entropies 0.1, 0.2, 0.3, 0.5 (candidates) and a non-candidate at 0: gamma 0.35 takes the lowest three
    (0.1 + 0.2 = 0.3 <= 0.35 -> 0.1 + 0.2 + 0.3 - 0.3 = 0.3 ok; + 0.5 - 0.5 = 0.6 > 0.35)."""
    entropy = torch.tensor([[0.3, 0.0, 0.5, 0.1, 0.2]])
    candidates = torch.tensor([[True, False, True, True, True]])
    rule = build("commit_rules", EntropyBoundRuleParams(gamma=0.35))
    assert rule(-entropy, candidates).tolist() == [[True, False, False, True, True]]
    rule.gamma = 0.05  # only the lowest: 0.1 + 0.2 - 0.2 = 0.1 > 0.05
    assert rule(-entropy, candidates).tolist() == [[False, False, False, True, False]]
    assert not rule(-entropy, torch.zeros_like(candidates)).any()
    exact = torch.tensor([[0.75, 0.25, 0.5, 1.0]])  # partial sums 0, 0.25, 0.75, 1.5: the bound is inclusive
    rule.gamma = 0.75
    assert rule(-exact, torch.ones_like(exact, dtype=torch.bool)).tolist() == [[True, True, True, False]]


def test_rule_needs_the_entropy_confidence():
    with pytest.raises(DvlmError, match="neg_entropy"):
        dvlm.generate(torch.nn.Identity(), input_ids=[[1, 2]],
                      sampler={"kind": "parallel", "commit_rule": {"kind": "entropy_bound"}})
    params = resolve_sampler({"kind": "parallel", "confidence": "neg_entropy", "commit_rule": "entropy_bound"})
    assert build("samplers", params).rule.gamma == 0.1
    with pytest.raises(DvlmError, match="alg: entropy"):
        resolve_sampler({"kind": "dream", "alg": "maskgit_plus", "commit_rule": {"kind": "entropy_bound"}})
    assert resolve_sampler({"kind": "dream", "alg": "entropy", "commit_rule": "entropy_bound"}).commit_rule.gamma == 0.1


def test_gamma_must_be_positive():
    with pytest.raises(ValueError):
        EntropyBoundRuleParams(gamma=0.0)
