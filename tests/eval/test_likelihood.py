"""dvlm.score: LLaDA's Monte-Carlo likelihood, against hand-computed cases and on the synthetic
multiple-choice task with a trained tiny model."""

import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F

import dvlm
from dvlm.core.errors import EvalError
from dvlm.core.likelihood import answer_elbo, random_masks, stratified_counts
from dvlm.core.plugins import get_registry
from dvlm.eval import TASKS_DIR

TINY_LLADA = {"kind": "llada", "d_model": 32, "n_heads": 2, "n_kv_heads": 2, "n_layers": 2, "mlp_hidden_size": 64,
              "vocab_size": 64, "mask_token_id": 60, "eos_token_id": 61, "pad_token_id": 61, "eot_token_id": 62,
              "bos_token_id": None, "dtype": "float32"}
PROMPT = [5, 9, 14, 3, 22]


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    params = get_registry().get("backbones", "llada").params.model_validate(TINY_LLADA)
    return get_registry().build("backbones", params).eval()


def masked_log_probs(backbone, prompt, answer, masked_positions):
    """Hand computation: log p(answer_i | prompt, answer with ``masked_positions`` masked) for i masked."""
    noised = [TINY_LLADA["mask_token_id"] if i in masked_positions else t for i, t in enumerate(answer)]
    with torch.no_grad():
        logits = backbone(torch.tensor([prompt + noised]))[0, len(prompt):]  # [A, V]
    log_probs = F.log_softmax(logits.double(), dim=-1)
    return {i: float(log_probs[i, answer[i]]) for i in masked_positions}


def test_stratified_counts_follow_llada():
    assert stratified_counts(10, 4, 3).tolist() == [3, 6, 8, 10]  # backbones.md 2.8 (round half to even)
    for length, start in itertools.product(range(1, 7), range(1, 7)):
        if start <= length:  # one batch of A rows covers every count exactly once
            assert sorted(stratified_counts(length, length, start).tolist()) == list(range(1, length + 1))


def test_random_masks_have_exactly_the_counts():
    counts = torch.tensor([1, 3, 5, 2])
    masked = random_masks(counts, 5, torch.Generator().manual_seed(0))
    assert masked.sum(-1).tolist() == [1, 3, 5, 2]


def test_one_token_answer_is_exact(backbone):
    """A = 1: every sample masks the one answer token with p = 1, so the estimate is log p exactly."""
    expected = masked_log_probs(backbone, PROMPT, [17], {0})[0]
    assert dvlm.score(backbone, PROMPT, [[17]], mc_num=4, batch_size=2) == [pytest.approx(expected, abs=1e-5)]


def test_inverse_p_weighting_is_exact_when_every_token_costs_the_same(backbone):
    """Uniform logits: each masked token costs log V whatever is masked; with the 1/p weighting every row
    is A log V, so the estimate is -A log V for any seed and sample count."""
    uniform = get_registry().build("backbones", backbone.params).eval()
    uniform.load_state_dict(backbone.state_dict())
    torch.nn.init.zeros_(uniform.lm_head.weight)
    answer = [7, 8, 9, 10, 11]
    for seed, mc_num, batch in [(0, 8, 4), (3, 6, 3), (11, 5, 5)]:
        (estimate,) = dvlm.score(uniform, PROMPT, [answer], mc_num=mc_num, batch_size=batch, seed=seed)
        assert estimate == pytest.approx(-len(answer) * math.log(TINY_LLADA["vocab_size"]), rel=1e-6)


def test_two_token_answer_matches_the_enumerated_expectation(backbone):
    """A = 2, batches of 2 rows: counts {1, 2} once each. The 2-row always masks both tokens; the 1-row masks
    token 0 or token 1 (weight 2). Enumerating both gives the only two values a batch can take."""
    answer = [30, 31]
    both = masked_log_probs(backbone, PROMPT, answer, {0, 1})
    only = [masked_log_probs(backbone, PROMPT, answer, {i})[i] for i in (0, 1)]
    batch_values = [(both[0] + both[1] + 2 * only[i]) / 2 for i in (0, 1)]
    exact = sum(batch_values) / 2  # the estimator's expectation
    seen = set()
    for seed in range(8):
        (value,) = dvlm.score(backbone, PROMPT, [answer], mc_num=2, batch_size=2, seed=seed)
        match = [i for i in (0, 1) if abs(value - batch_values[i]) < 1e-5]
        assert match, (value, batch_values)
        seen.update(match)
    assert seen == {0, 1}  # both masks are drawn
    batches = 400
    (mean,) = dvlm.score(backbone, PROMPT, [answer], mc_num=2 * batches, batch_size=2, seed=1)
    spread = abs(batch_values[0] - batch_values[1]) / 2 / math.sqrt(batches)
    assert abs(mean - exact) < 4 * spread + 1e-6


def test_a_seed_gives_the_same_estimate_and_other_seeds_vary(backbone):
    answer = [[12, 13, 14, 15]]
    first = dvlm.score(backbone, PROMPT, answer, mc_num=4, batch_size=2, seed=5)
    assert dvlm.score(backbone, PROMPT, answer, mc_num=4, batch_size=2, seed=5) == first
    assert len({dvlm.score(backbone, PROMPT, answer, mc_num=4, batch_size=2, seed=s)[0] for s in range(4)}) > 1


def test_choices_share_masks_and_match_single_scoring(backbone):
    """Scoring several choices at once equals scoring each alone with the same seed."""
    choices = [[20, 21, 22], [23, 24, 25]]
    together = dvlm.score(backbone, PROMPT, choices, mc_num=4, batch_size=4, seed=2)
    alone = [dvlm.score(backbone, PROMPT, [c], mc_num=4, batch_size=4, seed=2)[0] for c in choices]
    assert together == pytest.approx(alone, abs=1e-6)
    prefix = backbone.embed(torch.tensor([PROMPT]))[0]
    direct = answer_elbo(backbone, prefix, torch.tensor(choices[0]), mc_num=4, batch_size=4, seed=2)
    assert together[0] == pytest.approx(direct, abs=1e-6)


def test_bad_arguments_name_the_fix(backbone):
    with pytest.raises(EvalError, match="multiple of batch_size"):
        dvlm.score(backbone, PROMPT, [[1]], mc_num=10, batch_size=4)
    with pytest.raises(EvalError, match="at least one token"):
        dvlm.score(backbone, PROMPT, [[1], []])
    with pytest.raises(EvalError, match="no tokenizer"):
        dvlm.score(backbone, PROMPT, ["red"])
    with pytest.raises(EvalError, match="DiffusionVLM"):
        dvlm.score(backbone, "a text prompt", [[1]])


def test_trained_model_ranks_the_true_colour_first(trained_checkpoint):
    """The synthetic multiple-choice task (dvlm_shapes_mc's data): a tiny model trained on colour questions
    puts the right colour first among all four, for the images shipped with the task."""
    model = dvlm.load_pretrained(trained_checkpoint)
    rows = [json.loads(line) for line in (TASKS_DIR / "data" / "shapes_mc.jsonl").read_text().splitlines()]
    colour = [row for row in rows if row["kind"] == "colour"]
    assert len({row["answer"] for row in colour}) == 4 and len(colour) >= 16
    ranked_first = []
    for row in colour:
        scores = dvlm.score(model, row["question"], row["choices"], images=[TASKS_DIR / "data" / row["image"]],
                            mc_num=4, batch_size=4)
        ranked_first.append(row["choices"][max(range(len(scores)), key=scores.__getitem__)] == row["answer"])
    assert sum(ranked_first) / len(ranked_first) >= 0.9, ranked_first  # chance: 0.25


def test_the_head_sees_only_masked_answer_rows(backbone):
    """#15: dvlm.score never builds logits for the prompt or for visible answer tokens: the LM head runs on
    the masked answer rows only (at most batch_size x A rows per batch, here far fewer than the sequence)."""
    rows = []
    handle = backbone.lm_head.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[0]))
    try:
        dvlm.score(backbone, PROMPT * 4, [[7, 8, 9]], mc_num=4, batch_size=2, close_turn=False)
    finally:
        handle.remove()
    assert len(rows) == 2 and all(1 <= r <= 2 * 3 for r in rows)  # 2 batches; never the 2 x 23 rows
