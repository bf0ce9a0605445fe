"""Every bad input to ``dvlm.generate`` is one ``DvlmError`` naming the cause and the fix (issue #14)."""

import copy
import shutil

import pytest
import torch

import dvlm
from dvlm.core.errors import CheckpointError, PromptError, SamplerError
from tests.samplers.conftest import FIXTURES, prompts

SPEC = {"kind": "fixed_count", "gen_length": 8, "steps": 4}


def test_a_prompt_longer_than_the_context_is_refused(llada):  # llada_tiny: 256 positions
    with pytest.raises(SamplerError, match=r"prompt \(250 tokens\) plus gen_length=8 is 258 positions.*context of 256"):
        dvlm.generate(llada, prompts(1, 250, seed=0), sampler=SPEC)
    ragged = [list(range(10)), list(range(249))]  # the longest real row counts, not the padding
    with pytest.raises(SamplerError, match="249 tokens"):
        dvlm.generate(llada, ragged, sampler=SPEC)


def test_gen_length_is_bounded_by_the_context(llada):
    with pytest.raises(SamplerError, match="lower gen_length to at most 253"):
        dvlm.generate(llada, [[1, 2, 3]], sampler={**SPEC, "gen_length": 300, "steps": 300})


@pytest.mark.parametrize("bad", [256, 10_000, -1])
def test_out_of_vocabulary_and_negative_ids_are_refused(llada, bad):
    with pytest.raises(PromptError, match=f"id {bad} at \\[1, 2\\], outside the vocabulary \\[0, 256\\)"):
        dvlm.generate(llada, torch.tensor([[1, 2, 3], [4, 5, bad]]), sampler=SPEC)


def test_out_of_vocabulary_draft_is_refused(llada):
    with pytest.raises(PromptError, match="infill draft holds id 999"):
        dvlm.generate(llada, [[1, 2, 3]], draft=[999, 250], sampler=SPEC)


@pytest.mark.parametrize("empty", [[], [[]], [[1, 2], []], torch.zeros(0, 4, dtype=torch.long)])
def test_an_empty_batch_or_prompt_is_refused(llada, empty):
    with pytest.raises(PromptError, match="at least one"):
        dvlm.generate(llada, empty, sampler=SPEC)


NAN_PATHS = {
    "fixed_count": SPEC,
    "random_confidence": {**SPEC, "confidence": "random"},
    "parallel_dual": {"kind": "parallel", "gen_length": 8, "block_length": 4, "threshold": 0.5, "cache": "dual"},
    "sampled": {**SPEC, "temperature": 0.8},
    "dream": {"kind": "dream", "gen_length": 8, "steps": 4},
    "dream_first_token_from_the_prefill": {"kind": "dream", "gen_length": 8, "steps": 4, "cache": "prefix"},
}


@pytest.mark.parametrize("path", NAN_PATHS)
def test_nan_logits_are_an_error_not_token_0(llada, dream, path):
    """A NaN in the head's weights (or an fp16 overflow) gives NaN logits: every decoding path reports it."""
    broken = copy.deepcopy(dream if path.startswith("dream") else llada)
    with torch.no_grad():
        broken.lm_head.weight[5, 0] = float("nan")
    # LaViDa-Dream's first token comes from the prefill's hidden state: with every other answer token fixed by a
    # draft no step follows, so only that path can report it
    draft = [broken.special_tokens.mask_id] + [7] * 7 if path == "dream_first_token_from_the_prefill" else None
    with pytest.raises(SamplerError, match="NaN logits"):
        dvlm.generate(broken, [[1, 2, 3]], draft=draft, sampler=NAN_PATHS[path])


def test_a_folder_with_both_spec_and_config_is_ambiguous(tmp_path):
    folder = tmp_path / "both"
    shutil.copytree(FIXTURES / "llada_tiny", folder)
    (folder / "spec.json").write_text("{}")
    with pytest.raises(CheckpointError, match="both spec.json .* and config.json"):
        dvlm.load_pretrained(folder)


def test_float_ids_are_refused_not_truncated(llada):
    with pytest.raises(PromptError, match="integer token ids .* got torch.float32"):
        dvlm.generate(llada, torch.tensor([[1.5, 2.0, 3.0]]), sampler=SPEC)


@pytest.mark.parametrize("mask", [torch.ones(1, 2, dtype=torch.long), torch.tensor([[0, 0, 0]]),
                                  torch.tensor([[0, 2, 1]])])
def test_a_malformed_attention_mask_is_refused(llada, mask):
    with pytest.raises(PromptError, match="attention_mask"):
        dvlm.generate(llada, torch.tensor([[1, 2, 3]]), attention_mask=mask, sampler=SPEC)
