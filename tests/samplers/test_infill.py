"""Infilling and constraints: fixed draft tokens never change, masked spans take their length from the draft,
LaViDa-FIM fillers are stripped from the text, and line-start constraints hold 100% by construction."""

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit

import dvlm
from tests.samplers.conftest import prompts, with_tokens

MASK, FIM, FILLER, EOT = 250, 248, 249, 252


def word_tokenizer(vocab_size=256) -> Tokenizer:
    """A real ``tokenizers`` word-level tokenizer: token i is the word ``t<i>``."""
    tokenizer = Tokenizer(WordLevel({f"t{i}": i for i in range(vocab_size)}, unk_token="t0"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    return tokenizer


@pytest.fixture(scope="module")
def fim_llada(llada):
    return with_tokens(llada, eot_token_id=EOT, extra_token_ids={"fim": FIM, "fim_filler": FILLER})


@pytest.mark.parametrize("spec", [
    {"kind": "fixed_count", "gen_length": 24, "steps": 12, "block_length": 12, "schedule": "shift", "cache": "prefix"},
    {"kind": "parallel", "gen_length": 24, "block_length": 12, "threshold": 0.5},
    {"kind": "dream", "gen_length": 24, "steps": 8, "alg": "maskgit_plus"},
])
def test_fixed_tokens_never_change_and_only_masks_are_generated(llada, spec):
    draft = torch.tensor([[11, 12, MASK, MASK, MASK, 13, MASK, 14, 15, MASK, MASK, 16]])
    fixed = draft != MASK
    result = dvlm.generate(llada, prompts(1, 8, seed=7), draft=draft, sampler=spec, trace=True)
    answer = result.token_ids[0]
    assert torch.equal(answer[:12][fixed[0]], draft[0][fixed[0]])
    assert not bool((answer == MASK).any())
    committed = torch.stack([e.committed[0] for e in result.steps]).any(0)
    assert not bool(committed[:12][fixed[0]].any())  # no step ever committed over a fixed token
    assert int(torch.stack([e.committed[0] for e in result.steps]).sum()) == 6 + 12  # draft masks + the tail


def test_schedule_counts_come_from_the_block_masks_of_the_draft(llada):
    """LaViDa's 'jump to t = L_M / L': a block with 4 masks and 4 steps commits one token per step."""
    draft = torch.tensor([[1, MASK, 2, MASK, 3, MASK, 4, MASK]])
    result = dvlm.generate(llada, prompts(1, 6, seed=8), draft=draft, trace=True, sampler={
        "kind": "fixed_count", "gen_length": 8, "steps": 4, "block_length": 8})
    assert [int(e.committed.sum()) for e in result.steps] == [1, 1, 1, 1]


def test_fim_markers_and_fillers_stay_in_the_ids_and_leave_the_text(fim_llada):
    """A LaViDa-FIM draft ``text [M]..[M] [FIM] text [M][M] [FIM] text <eot>``: the spans may only become
    content (token 77) or [S] fillers here (every other token is banned), and the text drops [S] and [FIM]."""
    draft = torch.tensor([[21, 22, MASK, MASK, MASK, MASK, FIM, 23, MASK, MASK, FIM, 24, EOT]])
    banned = [t for t in range(256) if t not in (77, FILLER)]
    result = dvlm.generate(fim_llada, prompts(1, 7, seed=9), draft=draft, tokenizer=word_tokenizer(), sampler={
        "kind": "fixed_count", "gen_length": 13, "steps": 13, "suppress_tokens": banned})
    ids = result.token_ids[0].tolist()
    spans = ids[2:6] + ids[8:10]
    assert set(spans) <= {77, FILLER} and FILLER in spans  # the model did emit fillers
    assert ids[6] == FIM and ids[10] == FIM and ids[12] == EOT  # fixed draft tokens
    assert result.answer_lengths == [13]  # up to and including the end-of-turn token
    expected = [f"t{t}" for t in ids if t not in (FIM, FILLER, EOT)]
    assert result.text[0].split() == expected


def test_constrained_poem_lines_start_with_the_given_syllables(fim_llada):
    """LaViDa's constrained poem completion: each line's first token is fixed in the draft."""
    starts, newline, span = [41, 42, 43, 44], 45, 5
    draft = []
    for s in starts:
        draft += [s] + [MASK] * span + [newline]
    draft += [EOT]
    for seed in range(3):
        result = dvlm.generate(fim_llada, prompts(1, 6, seed=100 + seed), draft=torch.tensor([draft]),
                               sampler="lavida-coco", overrides={"gen_length": 32, "steps": 16})
        lines, line = [], []
        for t in result.token_ids[0].tolist()[: len(draft) - 1]:
            if t == newline:
                lines.append(line)
                line = []
            else:
                line.append(t)
        assert [ln[0] for ln in lines] == starts and all(len(ln) == 1 + span for ln in lines)


def test_a_draft_longer_than_the_answer_is_a_clear_error(llada):
    with pytest.raises(dvlm.DvlmError, match="draft has 9 tokens but gen_length is 8"):
        dvlm.generate(llada, prompts(1, 4, seed=0), draft=[1] * 9,
                      sampler={"kind": "fixed_count", "gen_length": 8, "steps": 8})


@pytest.mark.parametrize("shape", ["flat", "one_row"])
def test_one_draft_is_broadcast_to_every_row_never_reshaped(llada, shape):
    """Issue #14: a [1, L] draft with batch 2 was reshaped across rows (row 0 got the first half)."""
    from dvlm.core.generation import PromptBatch, left_pad, run_sampler
    from dvlm.core.sampler_specs import resolve_sampler

    draft = torch.tensor([11, 12, MASK, 13, MASK, MASK, 14, 15])
    spec = resolve_sampler({"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8})
    given = draft if shape == "flat" else draft[None]
    ids, padding = left_pad([[1, 2, 3], [4, 5, 6, 7, 8]], pad_id=251)
    result = run_sampler(llada, PromptBatch(ids, padding, draft=given), spec)  # as DiffusionVLM.prompt_batch passes it
    fixed = draft != MASK
    for row in result.token_ids:
        assert torch.equal(row[:8][fixed], draft[fixed])


def test_a_draft_whose_rows_do_not_match_the_batch_is_refused(llada):
    with pytest.raises(dvlm.DvlmError, match=r"infill draft has shape \(3, 4\) for a batch of 2"):
        dvlm.generate(llada, [[1, 2, 3], [4, 5]], draft=torch.full((3, 4), MASK),
                      sampler={"kind": "fixed_count", "gen_length": 8, "steps": 4})
