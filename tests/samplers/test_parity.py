"""Every generate case of the fixtures reproduces the reference tokens exactly (CPU, float32)."""

import pytest
import torch

from dvlm.core.generation import PromptBatch, run_sampler
from dvlm.core.sampler_specs import resolve_sampler
from tests.samplers.conftest import fixture_cases

LLADA = fixture_cases("llada_tiny", ("llada_generate", "lavida_llada_generate"))
DREAM = fixture_cases("dream_tiny", ("dream_diffusion_generate", "lavida_dream_generate"))


def lavida_schedule(args):
    """LaViDa's (schedule, schedule_kwargs) -> a dvlm schedule spec."""
    name, kwargs = args["schedule"], args["schedule_kwargs"] or {}
    if name is None:
        return "linear"
    if name == "shift":
        return {"kind": "shift", "alpha": kwargs.get("shift", 3)}
    return name if name in ("cosine", "logit_normal") else "linear_floor"


#: LLaDA / LaViDa ``remasking`` -> dvlm confidence measure
REMASKING = {"low_confidence": "probability", "margin": "margin", "entrophy": "neg_entropy", "random": "random"}


def sampler_spec(case) -> dict:
    """The dvlm sampler spec equivalent to the reference call of a fixture case."""
    a = case["args"]
    assert a["temperature"] == 0  # greedy: the only setting whose tokens are comparable across RNG streams
    if case["kind"] == "llada_generate":
        return {"kind": "fixed_count", "gen_length": a["gen_length"], "steps": a["steps"],
                "block_length": a["block_length"], "confidence": REMASKING[a["remasking"]],
                "cfg_scale": a.get("cfg_scale", 0.0), "cache": "none"}
    if case["kind"] == "lavida_llada_generate":
        return {"kind": "fixed_count", "gen_length": a["max_new_tokens"], "steps": None,  # LaViDa: steps = L
                "block_length": a["block_length"], "step_ratio": a["step_ratio"], "schedule": lavida_schedule(a),
                "confidence": REMASKING[a["remasking"]], "cache": "prefix" if a["prefix_lm"] else "none"}
    spec = {"kind": "dream", "gen_length": a["max_new_tokens"], "steps": a["steps"], "alg": a["alg"],
            "alg_temp": a["alg_temp"], "eps": a["eps"], "top_p": a["top_p"], "top_k": a["top_k"]}
    if case["kind"] == "lavida_dream_generate":
        spec.update(step_ratio=a["step_ratio"], cache="prefix" if a["prefix_lm"] else "none",
                    schedule=None if a["schedule"] is None else lavida_schedule(a))
    return spec


def run_case(model, case, tensors):
    prompt = PromptBatch(input_ids=tensors["prompt_ids"], attention_mask=tensors.get("attention_mask"))
    result = run_sampler(model, prompt, resolve_sampler(sampler_spec(case)), trace=True)
    p = tensors["prompt_ids"].shape[1]
    expected = tensors["answer_ids"] if "answer_ids" in tensors else tensors["output_ids"][:, p:]
    return result, expected


def committed_per_step(result):
    return [event.committed.sum(-1).tolist() for event in result.steps]


def nonzero_steps(per_step):
    """Steps that commit nothing change nothing: the references run a forward for them, dvlm skips them."""
    return [row for row in per_step if any(row)]


@pytest.mark.parametrize("case,tensors", LLADA, ids=[c["name"] for c, _ in LLADA])
def test_llada_and_lavida_generate(llada, case, tensors):
    result, expected = run_case(llada, case, tensors)
    assert torch.equal(result.token_ids, expected)
    reference = case["tokens_committed_per_step"]
    assert committed_per_step(result) == nonzero_steps(reference)
    skipped = len(reference) - len(nonzero_steps(reference))
    assert result.nfe == case["num_forward_passes"] - skipped  # LaViDa's prefix prefill counts as one forward


@pytest.mark.parametrize("case,tensors", DREAM, ids=[c["name"] for c, _ in DREAM])
def test_dream_and_lavida_dream_generate(dream, case, tensors):
    result, expected = run_case(dream, case, tensors)
    assert torch.equal(result.token_ids, expected)
    # steps that commit nothing run no forward here; the reference runs them and changes nothing. With the
    # prefix cache, answer token 0 comes from the prefill and is not a step (as in the reference's counts).
    assert committed_per_step(result) == nonzero_steps(case["tokens_committed_per_step"])
