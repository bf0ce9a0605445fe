"""KV cache windows, padding and positions: each must equal the uncached computation it replaces."""

import pytest
import torch

import dvlm
from dvlm.core.attention import prefix_lm_mask
from dvlm.core.rope import padded_positions

TIGHT = dict(atol=2e-5, rtol=1e-5)  # fp32; only summation order differs


def build(kind: str) -> torch.nn.Module:
    registry = dvlm.registry()
    params = registry.get("backbones", kind).params.for_tests()
    torch.manual_seed(0)
    return registry.build("backbones", params).eval()


def random_ids(model, shape, seed=0):
    return torch.randint(0, model.vocab_size, shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=["llada", "dream"])
def model(request):
    return build(request.param)


@pytest.mark.parametrize("prefix,answer", [(12, 8), (5, 16), (1, 3)])
def test_cached_prefix_then_answer_equals_prefix_lm_forward(model, prefix, answer):
    """LaViDa Prefix-DLM: prefix written once, answer windows attend to prefix + themselves."""
    ids = random_ids(model, (2, prefix + answer))
    full = model(ids, attention_mask=prefix_lm_mask(torch.tensor([prefix, prefix]), prefix + answer))
    cache = model.new_cache(2, prefix + answer + 4)
    prefix_logits = model(ids[:, :prefix], cache=cache)
    torch.testing.assert_close(prefix_logits, full[:, :prefix], **TIGHT)
    for step in range(2):  # answer windows re-run against the same prefix (as a sampler's steps do)
        answer_ids = ids[:, prefix:].clone()
        answer_ids[:, step] = model.special_tokens.mask_id
        window = model(answer_ids, cache=cache, cache_start=prefix)
        reference = model(torch.cat([ids[:, :prefix], answer_ids], 1),
                          attention_mask=prefix_lm_mask(torch.tensor([prefix, prefix]), prefix + answer))
        torch.testing.assert_close(window, reference[:, prefix:], **TIGHT)


def test_embeddings_in_equal_ids_in(model):
    ids = random_ids(model, (2, 9))
    torch.testing.assert_close(model(inputs_embeds=model.embed(ids)), model(ids), atol=0, rtol=0)


def test_block_refresh_window_equals_full_forward(model):
    """Fast-dLLM style: a full forward fills the cache; a middle block recomputed against it matches."""
    ids = random_ids(model, (2, 24))
    cache = model.new_cache(2, 24)
    full = model(ids, cache=cache)
    block = model(ids[:, 8:16], cache=cache, cache_start=8, attend_end=24)
    torch.testing.assert_close(block, full[:, 8:16], **TIGHT)


def test_dream_cached_window_first_row_uses_previous_hidden_state():
    model = build("dream")
    ids = random_ids(model, (1, 10))
    full = model(ids)  # row 6 = head(hidden at 5)
    cache = model.new_cache(1, 10)
    model(ids[:, :6], cache=cache)
    window = model(ids[:, 6:], cache=cache, cache_start=6, attend_end=10)
    # prefix positions never saw tokens 6..9 here, so compare with the prefix-LM forward
    reference = model(ids, attention_mask=prefix_lm_mask(torch.tensor([6]), 10))
    torch.testing.assert_close(window, reference[:, 6:], **TIGHT)
    assert not torch.allclose(window[:, 0], model(ids[:, 6:])[:, 0])  # not the window's own first row


@pytest.mark.parametrize("use_cache", [False, True])
def test_left_padded_rows_equal_their_unpadded_runs(model, use_cache):
    lengths = [11, 7, 9]
    width = max(lengths)
    rows = [random_ids(model, (1, n), seed=n) for n in lengths]
    pad = model.special_tokens.pad_id
    ids = torch.stack([torch.cat([torch.full((width - n,), pad), row[0]]) for n, row in zip(lengths, rows)])
    mask = (torch.arange(width)[None] >= torch.tensor([width - n for n in lengths])[:, None]).long()
    positions = padded_positions(mask)
    if use_cache:  # prompt cached, then a 4-token answer window; the mask covers the whole sequence
        answers = random_ids(model, (3, 4), seed=99)
        full_mask = torch.cat([mask, torch.ones(3, 4, dtype=torch.long)], 1)
        cache = model.new_cache(3, width + 4)
        model(ids, attention_mask=full_mask, position_ids=positions, cache=cache)
        out = model(answers, attention_mask=full_mask, position_ids=positions[:, -1:] + 1 + torch.arange(4),
                    cache=cache, cache_start=width)
        for i, row in enumerate(rows):
            solo_cache = model.new_cache(1, lengths[i] + 4)
            model(row, cache=solo_cache)
            solo = model(answers[i : i + 1], cache=solo_cache, cache_start=lengths[i])
            torch.testing.assert_close(out[i : i + 1], solo, **TIGHT)
    else:
        out = model(ids, attention_mask=mask, position_ids=positions)
        for i, (n, row) in enumerate(zip(lengths, rows)):
            skip = int(model.logits_shifted)  # Dream's first real row is predicted from a pad position
            torch.testing.assert_close(out[i : i + 1, width - n + skip :], model(row)[:, skip:], **TIGHT)


def test_cache_rejects_windows_it_cannot_serve(model):
    ids = random_ids(model, (2, 6))
    cache = model.new_cache(2, 8)
    with pytest.raises(ValueError, match="capacity 8"):
        model(torch.cat([ids, ids], 1), cache=cache)
    with pytest.raises(ValueError, match="only \\[0, 0\\) is written"):
        model(ids, cache=cache, cache_start=2)
    with pytest.raises(ValueError, match="batch size 2"):
        model(ids[:1], cache=cache)
    model(ids[:, :4], cache=cache)
    with pytest.raises(ValueError, match="attend_end=8"):
        model(ids[:, :2], cache=cache, cache_start=4, attend_end=8)
    cache.reset()
    assert cache.written_end == 0  # nothing is readable again until a forward writes (buffers are not zeroed)
    with pytest.raises(ValueError, match="only \\[0, 0\\) is written"):
        model(ids, cache=cache, cache_start=2)


def test_prefix_lm_mask_semantics():
    mask = prefix_lm_mask(torch.tensor([2, 0]), 4)[:, 0]
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask[0], expected)
    assert mask[1].all()  # no prefix: fully bidirectional
    padded = prefix_lm_mask(torch.tensor([2]), 4, key_padding=torch.tensor([[0, 1, 1, 1]]))[0, 0]
    assert not padded[:, 0].any() and torch.equal(padded[:, 1:], expected[:, 1:])
