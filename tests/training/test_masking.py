"""Masking strategies: which tokens each copy masks, and the loss each weighting gives."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dvlm
from dvlm.core.masked_batch import IGNORE_INDEX
from dvlm.core.specs import Family
from pydantic import TypeAdapter


def build(kind, **options):
    params = TypeAdapter(Family["masking_strategies"]).validate_python({"kind": kind, **options})
    return dvlm.registry().build("masking_strategies", params)


@st.composite
def label_batches(draw):
    """Random [B, T] labels: a prompt of IGNORE, then targets, then (sometimes) IGNORE again."""
    batch, length = draw(st.integers(1, 5)), draw(st.integers(1, 40))
    labels = torch.full((batch, length), IGNORE_INDEX)
    for row in range(batch):
        start = draw(st.integers(0, length))
        stop = draw(st.integers(start, length))
        labels[row, start:stop] = torch.arange(start, stop) % 7 + 1
    return labels


@settings(max_examples=60, deadline=None)
@given(labels=label_batches(), seed=st.integers(0, 2**31 - 1))
def test_complementary_copies_supervise_every_target_exactly_once(labels, seed):
    out = build("complementary")({"labels": labels}, torch.Generator().manual_seed(seed))
    batch = labels.shape[0]
    targets = labels != IGNORE_INDEX
    first, second = out.masked[:batch], out.masked[batch:]
    assert out.copies == 2 and out.masked.shape == (2 * batch, labels.shape[1])
    assert torch.equal(first.int() + second.int(), targets.int())  # each target in exactly one copy
    assert torch.equal(out.labels[:batch][first], labels[first])
    assert torch.equal(out.labels[batch:][second], labels[second])
    assert bool((out.labels[~out.masked] == IGNORE_INDEX).all())
    assert torch.allclose(out.t[batch:], 1 - out.t[:batch]) and torch.allclose(out.p[batch:], 1 - out.p[:batch])


@settings(max_examples=60, deadline=None)
@given(labels=label_batches(), seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(["uniform", "complementary"]))
def test_only_targets_are_masked(labels, seed, kind):
    out = build(kind)({"labels": labels}, torch.Generator().manual_seed(seed))
    targets = (labels != IGNORE_INDEX).repeat(out.copies, 1)
    assert not bool((out.masked & ~targets).any())
    assert bool((out.weights[~out.masked] == 0).all())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_uniform_masked_fraction_tracks_t(seed):
    length = 4000
    labels = torch.randint(0, 50, (4, length))
    labels[:, :100] = IGNORE_INDEX  # a prompt: never masked, not counted
    out = build("uniform", eps=1e-3)({"labels": labels}, torch.Generator().manual_seed(seed))
    assert torch.allclose(out.p, (1 - 1e-3) * out.t + 1e-3)
    fraction = out.masked[:, 100:].float().mean(dim=1)
    sigma = torch.sqrt(out.p * (1 - out.p) / (length - 100))
    assert bool(((fraction - out.p).abs() <= 5 * sigma + 1e-9).all()), (fraction, out.p)


def test_uniform_t_is_uniform_on_unit_interval():
    labels = torch.ones(20000, 1, dtype=torch.long)
    out = build("uniform")({"labels": labels}, torch.Generator().manual_seed(0))
    histogram = torch.histc(out.t, bins=10, min=0, max=1)
    assert bool(((histogram / 20000 - 0.1).abs() < 0.01).all()), histogram
    assert float(out.masked.float().mean()) == pytest.approx(0.5, abs=0.01)  # E[p] = 1/2


def _hand_ce(logits, row, pos, label):
    values = logits[row, pos].tolist()
    return math.log(sum(math.exp(v) for v in values)) - values[label]


@pytest.mark.parametrize("kind", ["uniform", "complementary"])
@pytest.mark.parametrize("weighting", ["none", "inverse_t", "inverse_p"])
def test_loss_equals_hand_computed_cross_entropy(kind, weighting):
    labels = torch.tensor([[IGNORE_INDEX, 3, 1, 4, 1], [IGNORE_INDEX, IGNORE_INDEX, 2, 0, 4]])
    strategy = build(kind, weighting=weighting)
    draws = (strategy({"labels": labels}, torch.Generator().manual_seed(seed)) for seed in range(100))
    out = next(o for o in draws if o.num_masked >= 2)  # a draw that masks something in copy 1 too
    rows = labels.repeat(out.copies, 1)
    logits = torch.randn(rows.shape[0], rows.shape[1], 5, generator=torch.Generator().manual_seed(1))

    masked = [(r, i) for r in range(rows.shape[0]) for i in range(rows.shape[1]) if out.masked[r, i]]
    if weighting == "none":  # LaViDa code: mean CE over every masked target token, all copies together
        expected = sum(_hand_ce(logits, r, i, int(rows[r, i])) for r, i in masked) / len(masked)
    else:  # LLaDA SFT: Σ CE / p (or / t) / answer length per row, mean over rows
        expected = 0.0
        for r in range(rows.shape[0]):
            scale = max(float(out.p[r] if weighting == "inverse_p" else out.t[r]), 1e-3)
            answer = int((rows[r] != IGNORE_INDEX).sum())
            expected += sum(_hand_ce(logits, r, i, int(rows[r, i])) for rr, i in masked if rr == r) / scale / answer
        expected /= rows.shape[0]
    assert float(out.loss(logits)) == pytest.approx(expected, rel=1e-5)


def test_noised_copies_share_one_embedding_and_sum_its_gradients():
    labels = torch.tensor([[IGNORE_INDEX, 1, 2, 3, 4, 5, 6]])
    out = build("complementary")({"labels": labels}, torch.Generator().manual_seed(0))
    embeds = torch.randn(1, 7, 4, requires_grad=True)
    mask_embed = torch.full((4,), 9.0)
    noised = out.noise_embeds(embeds, mask_embed)
    assert noised.shape == (2, 7, 4)
    assert torch.equal(noised[out.masked], mask_embed.expand(int(out.masked.sum()), 4))
    noised.sum().backward()
    # every position is visible in exactly one copy except the prompt, visible in both
    assert embeds.grad[0, 0].tolist() == [2.0] * 4 and bool((embeds.grad[0, 1:] == 1).all())
    ids = out.noise_ids(torch.arange(7)[None], mask_id=99)
    assert torch.equal(ids == 99, out.masked)


def test_empty_targets_give_a_zero_loss_that_still_backpropagates():
    labels = torch.full((2, 4), IGNORE_INDEX)
    for kind in ("uniform", "complementary"):
        out = build(kind)({"labels": labels}, torch.Generator().manual_seed(0))
        logits = torch.randn(labels.shape[0] * out.copies, 4, 8, requires_grad=True)
        loss = out.loss(logits)
        loss.backward()
        assert loss.item() == 0.0 and logits.grad is not None


def test_bad_labels_shape_is_an_error():
    with pytest.raises(ValueError, match="batch, tokens"):
        build("uniform")({"labels": torch.zeros(3, dtype=torch.long)})


@pytest.mark.parametrize("weighting", ["inverse_p", "inverse_t"])
def test_complementary_copy_weights_have_a_floor(weighting):
    """Issue #14: copy 2's weight 1/(1 - p) had no floor (up to ~1.7e7 once t is near 1); now at most 1/eps."""
    from dvlm.plugins.masking.strategies import loss_weights

    targets = torch.ones(4, 6, dtype=torch.bool)
    masked = targets.clone()
    p = torch.tensor([0.5, 1 - 6e-8, 6e-8, 0.999])  # the second copy of a draw with t -> 1 has 1 - p ~ 6e-8
    weights = loss_weights(masked, targets, p, p, weighting, eps=1e-3)
    per_token = weights * targets.sum(dim=1, keepdim=True) * targets.shape[0]  # undo the normalisation
    assert float(per_token.max()) == pytest.approx(1 / 1e-3)
    assert float(per_token[0, 0]) == pytest.approx(2.0)
    strategy = build("complementary", weighting=weighting)
    for seed in range(200):
        out = strategy({"labels": torch.tensor([[1, 2, 3, 4]])}, torch.Generator().manual_seed(seed))
        assert float(out.weights.max()) * 4 * 2 <= 1 / 1e-3 + 1e-3


@pytest.mark.parametrize("kind", ["uniform", "complementary"])
def test_loss_from_hidden_equals_the_full_logits_loss_in_chunks(kind, monkeypatch):
    """#15: the training loss applies the head to masked rows only, a few rows at a time (recomputed in the
    backward pass), with the loss and the gradients of the full-logits loss."""
    import dvlm.core.masked_batch as masked_batch

    labels = torch.randint(0, 11, (3, 9), generator=torch.Generator().manual_seed(0))
    labels[:, :2] = IGNORE_INDEX
    out = build(kind)({"labels": labels}, torch.Generator().manual_seed(1))
    head = torch.nn.Linear(6, 11, bias=False)
    hidden = torch.randn(3 * out.copies, 9, 6, generator=torch.Generator().manual_seed(2), requires_grad=True)

    expected = out.loss(head(hidden))
    grads = torch.autograd.grad(expected, [hidden, head.weight])
    seen = []
    handle = head.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    monkeypatch.setattr(masked_batch, "chunk_rows_for", lambda vocab: 4)
    chunked = out.loss_from_hidden(hidden, head, vocab_size=11)
    chunked_grads = torch.autograd.grad(chunked, [hidden, head.weight])
    handle.remove()
    torch.testing.assert_close(chunked, expected, rtol=1e-6, atol=1e-6)
    for got, want in zip(chunked_grads, grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert seen and max(seen) <= 4  # never more than a chunk of rows at once, forward or recomputed
    assert sum(seen) == 2 * out.num_masked  # each masked row once forward, once recomputed; no other row
