"""The CPU fast paths of the proposals compute what the plain computation computes: ``first_argmax`` returns
``torch.argmax``'s index (ties, infinities, odd widths), and a deterministic proposal on the candidate rows only
gives each candidate the token and confidence it gets when every row of the block is proposed."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dvlm.plugins.samplers import proposals
from dvlm.plugins.samplers.confidence import Margin, Probability, RandomConfidence
from dvlm.plugins.samplers.proposals import ARGMAX_GROUP, first_argmax, propose_dream, propose_llada


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 5), levels=st.integers(1, 6),
       vocab=st.one_of(st.integers(1, 4).map(lambda groups: groups * ARGMAX_GROUP),  # the vectorised path
                       st.integers(1, 3 * ARGMAX_GROUP + 5)),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]), seed=st.integers(0, 2**31 - 1),
       infinities=st.booleans())
def test_first_argmax_is_torch_argmax(rows, vocab, levels, dtype, seed, infinities):
    generator = torch.Generator().manual_seed(seed)
    values = torch.randint(0, levels, (rows, vocab), generator=generator).to(dtype)  # few levels: many ties
    if infinities:
        values[torch.rand(rows, vocab, generator=generator) < 0.3] = float("-inf")
        values[0] = float("-inf")  # a row with every token banned
    assert torch.equal(first_argmax(values), values.argmax(-1))


def test_first_argmax_at_a_real_vocabulary_with_a_tie_across_groups():
    values = torch.randn(3, 126464, generator=torch.Generator().manual_seed(0))
    values[1, [70, 5000, 126463]] = 9.0  # the first of three equal maxima, in different groups
    values[2, 126463] = 9.0  # the last column
    assert first_argmax(values).tolist() == values.argmax(-1).tolist() == [values[0].argmax().item(), 70, 126463]


PROPOSERS = {"llada": propose_llada, "dream": propose_dream}


def propose(convention, logits, candidates, on_host: bool, monkeypatch, seed=0, **settings):
    monkeypatch.setattr(proposals, "candidates_on_host", lambda c: on_host)
    options = {"temperature": 0.0, "top_p": None, "top_k": None, "banned": torch.tensor([3]),
               "confidence": Probability(), **settings}
    return PROPOSERS[convention](logits, candidates, generator=torch.Generator().manual_seed(seed), **options)


@pytest.mark.parametrize("convention", PROPOSERS)
@pytest.mark.parametrize("settings", [{}, {"confidence": Margin(), "top_k": 7}, {"top_p": 0.8}])
def test_deterministic_proposals_on_the_candidate_rows_equal_those_on_every_row(convention, settings, monkeypatch):
    logits = torch.randn(2, 9, 200, generator=torch.Generator().manual_seed(1))
    candidates = torch.rand(2, 9, generator=torch.Generator().manual_seed(2)) < 0.4
    candidates[1] = False  # a row with no candidate left
    some = propose(convention, logits, candidates, True, monkeypatch, **settings)
    every = propose(convention, logits, candidates, False, monkeypatch, **settings)
    assert torch.equal(some[0], every[0]) and torch.equal(some[1], every[1])
    assert bool((some[1][candidates] > float("-inf")).all()) and bool((some[1][~candidates] == float("-inf")).all())
    none = propose(convention, logits, torch.zeros_like(candidates), True, monkeypatch, **settings)
    assert bool((none[1] == float("-inf")).all()) and not bool(none[0].any())


class NoisyProbability:
    """A third party's measure that needs probabilities and draws noise, without declaring ``deterministic``."""

    def __call__(self, probs, chosen, generator=None):
        noise = torch.rand(chosen.shape, generator=generator, device=chosen.device) * 1e-3
        return probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1) + noise


@pytest.mark.parametrize("convention,settings", [("llada", {"temperature": 0.7}), ("dream", {"temperature": 0.7}),
                                                 ("llada", {"confidence": RandomConfidence()}),
                                                 ("llada", {"confidence": NoisyProbability()})])
def test_random_proposals_draw_on_every_row_wherever_the_candidates_are(convention, settings, monkeypatch):
    """A random stream must not depend on where the candidates are read: eager (CPU) and compiled (device-style)
    runs of one seed draw the same tokens."""
    logits = torch.randn(1, 12, 150, generator=torch.Generator().manual_seed(3))
    candidates = torch.tensor([[True, False] * 6])
    on_host = propose(convention, logits, candidates, True, monkeypatch, seed=5, **settings)
    on_device = propose(convention, logits, candidates, False, monkeypatch, seed=5, **settings)
    assert torch.equal(on_host[0], on_device[0]) and torch.equal(on_host[1], on_device[1])
