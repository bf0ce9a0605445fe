"""Property test (issue #14): whatever shapes, ids, lengths, drafts, sampler settings and dtypes a caller throws at
``dvlm.generate`` and ``dvlm.score``, each call returns a well-formed result or raises one ``DvlmError``."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dvlm
from dvlm.core.errors import DvlmError
from tests.samplers.conftest import FIXTURES

VOCAB, MASK = 256, 250
MODELS = {}
OUTCOMES = {"result": 0, "error": 0}


def model(name: str, dtype: str):
    if (name, dtype) not in MODELS:
        MODELS[name, dtype] = dvlm.load_pretrained(FIXTURES / f"{name}_tiny", dtype=dtype)
    return MODELS[name, dtype]


ids = st.integers(0, VOCAB - 1)
BAD_IDS = st.sampled_from([-1, -3, VOCAB, VOCAB + 7, 10**6])
lengths = st.one_of(*[st.integers(1, 24)] * 8, st.sampled_from([0, -1, 300]))  # mostly valid


@st.composite
def rows(draw):
    """1-3 ragged prompts of valid ids; now and then an empty batch, an empty prompt or a bad id."""
    flaw = draw(st.sampled_from(["none"] * 7 + ["empty_batch", "empty_row", "bad_id"]))
    if flaw == "empty_batch":
        return []
    prompts = draw(st.lists(st.lists(ids, min_size=1, max_size=12), min_size=1, max_size=3))
    if flaw == "empty_row":
        prompts[-1] = []
    if flaw == "bad_id":
        prompts[0][draw(st.integers(0, len(prompts[0]) - 1))] = draw(BAD_IDS)
    return prompts


COMMON = {
    "temperature": st.sampled_from([0.0, 0.7, 0.0, -1.0]), "top_k": st.sampled_from([None, 1, 3, 0]),
    "top_p": st.sampled_from([None, 0.5, 1.0, 1.5]), "early_stop": st.booleans(),
    "cache": st.sampled_from(["none", "prefix", "fast_dllm_prefix", "dual", "nope"]),
    "suppress_tokens": st.sampled_from([[], ["eos"], [251, "pad"], ["nothing"], [999]]),
}
OWN = {
    "fixed_count": {"steps": lengths, "block_length": lengths, "step_ratio": st.sampled_from([None, 0.5, 1.0]),
                    "confidence": st.sampled_from(["probability", "margin", "neg_entropy", "random"]),
                    "schedule": st.sampled_from(["linear", "shift", "cosine", "logit_normal", "dream"]),
                    "cfg_scale": st.sampled_from([0.0, 1.0]),
                    "commit_rule": st.sampled_from([None, "fixed_count", {"kind": "threshold", "threshold": 0.5},
                                                    "factor"])},
    "dream": {"steps": lengths, "alg": st.sampled_from(["origin", "maskgit_plus", "topk_margin", "entropy"]),
              "alg_temp": st.sampled_from([None, 0.0, 0.5]), "step_ratio": st.sampled_from([None, 0.5, 1.0]),
              "schedule": st.sampled_from([None, "shift"]), "eps": st.sampled_from([1e-3, 0.5]),
              "commit_rule": st.sampled_from([None, {"kind": "threshold", "threshold": 0.5}])},
    "parallel": {"block_length": lengths, "threshold": st.sampled_from([None, 0.3, 0.9]),
                 "factor": st.sampled_from([None, 1.0]),
                 "confidence": st.sampled_from(["probability", "margin", "neg_entropy"]),
                 "commit_rule": st.sampled_from([None, "fixed_count", "factor"])},
}


@st.composite
def sampler_specs(draw):
    """Mostly well-formed specs of each kind, sometimes with a bad value, a foreign field or an unknown kind."""
    kind = draw(st.sampled_from(["fixed_count", "dream", "parallel"] * 3 + ["bogus"]))
    spec = {"kind": kind, "gen_length": draw(lengths)}
    fields = {**COMMON, **OWN.get(kind, {})}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=6, unique=True)):
        spec[name] = draw(fields[name])
    if draw(st.integers(0, 9)) == 9:
        spec["not_a_field"] = 1
    return spec


@st.composite
def drafts(draw):
    shape = draw(st.sampled_from(["none", "flat", "one_row", "per_row", "three_rows"]))
    row = st.lists(st.sampled_from([MASK, MASK, 7, 251]) | BAD_IDS, min_size=0, max_size=10)
    if shape == "none":
        return None
    if shape == "flat":
        return draw(row)
    width = draw(st.integers(0, 10))
    count = {"one_row": 1, "per_row": -1, "three_rows": 3}[shape]
    cell = st.sampled_from([MASK, MASK, 7, 251])
    return [draw(st.lists(cell, min_size=width, max_size=width)) for _ in range(count)] if count > 0 else width


def well_formed(result, batch: int, gen_length: int):
    assert result.token_ids.shape == (batch, gen_length) and result.token_ids.dtype == torch.long
    assert bool(((result.token_ids >= 0) & (result.token_ids < VOCAB)).all())
    assert MASK not in result.token_ids.flatten().tolist()  # every position filled (or padding after a stop)
    assert len(result.answer_lengths) == batch and result.nfe >= 0  # 0: a draft fixed every position
    assert math.isfinite(result.tokens_per_forward)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(["llada", "dream"]), dtype=st.sampled_from(["float32", "bfloat16", "float16"]),
       prompt=rows(), as_tensor=st.sampled_from([None, torch.long, torch.int32, torch.float32]), draft=drafts(),
       spec=sampler_specs(), seed=st.integers(0, 3))
def test_generate_returns_a_well_formed_result_or_one_dvlm_error(name, dtype, prompt, as_tensor, draft, spec, seed):
    backbone = model(name, dtype)
    if draft is not None and isinstance(draft, int):  # "per_row": one draft per prompt
        draft = [[MASK] * draft for _ in prompt]
    given_ids = prompt
    if as_tensor is not None and prompt and len({len(r) for r in prompt}) == 1:  # a [B, P] tensor of that dtype
        given_ids = torch.tensor(prompt, dtype=as_tensor).reshape(len(prompt), -1)
    try:
        result = dvlm.generate(backbone, given_ids, draft=draft, sampler=spec,
                               generator=torch.Generator().manual_seed(seed))
    except DvlmError:
        OUTCOMES["error"] += 1
        return
    OUTCOMES["result"] += 1
    well_formed(result, len(prompt), spec["gen_length"])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(["llada", "dream"]), dtype=st.sampled_from(["float32", "bfloat16", "float16"]),
       prompt=st.lists(ids | BAD_IDS, min_size=0, max_size=12), choices=st.lists(st.lists(ids | BAD_IDS, max_size=5),
                                                                                 max_size=3),
       mc_num=st.sampled_from([0, 1, 2, 4, 3]), batch_size=st.sampled_from([0, 1, 2, 4]))
def test_score_returns_finite_likelihoods_or_one_dvlm_error(name, dtype, prompt, choices, mc_num, batch_size):
    try:
        scores = dvlm.score(model(name, dtype), prompt, choices, mc_num=mc_num, batch_size=batch_size)
    except DvlmError:
        return
    assert len(scores) == len(choices) and all(math.isfinite(s) and s <= 0 for s in scores)


def test_the_strategies_reach_both_outcomes():
    """Not vacuous: the property run produced results and errors; a plain call succeeds, a broken one is refused."""
    if sum(OUTCOMES.values()):  # after the property test in this session
        assert OUTCOMES["result"] >= 10 and OUTCOMES["error"] >= 10, OUTCOMES
    well_formed(dvlm.generate(model("llada", "float32"), [[1, 2, 3]], sampler={"kind": "fixed_count", "gen_length": 4,
                                                                                "steps": 2}), 1, 4)
    with pytest.raises(DvlmError):
        dvlm.generate(model("llada", "float32"), [[1, 2, 999]], sampler={"kind": "fixed_count", "gen_length": 4})
