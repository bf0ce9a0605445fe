"""Settings the fixtures do not cover, against literal re-statements of the reference loops (backbones.md §2.1,
lavida.md §3.1): LLaDA ``generate`` with CFG and other remasking measures, batched and left-padded. The
backbone is the fixture-verified tiny LLaDA; the loops below follow the references line by line."""

import pytest
import torch
import torch.nn.functional as F

import dvlm
from tests.samplers.conftest import prompts

MASK = 250


def llada_generate(model, prompt, attention_mask, steps, gen_length, block_length, cfg_scale, remasking):
    """ML-GSAI/LLaDA ``generate`` at temperature 0 (Oct-2025 batched version)."""
    x = torch.full((prompt.shape[0], prompt.shape[1] + gen_length), MASK, dtype=torch.long)
    x[:, : prompt.shape[1]] = prompt
    if attention_mask is not None:
        answer = torch.ones(prompt.shape[0], gen_length, dtype=attention_mask.dtype)
        attention_mask = torch.cat([attention_mask, answer], 1)
    prompt_index = x != MASK
    num_blocks = gen_length // block_length
    steps = steps // num_blocks
    for b in range(num_blocks):
        lo, hi = prompt.shape[1] + b * block_length, prompt.shape[1] + (b + 1) * block_length
        block_mask = x[:, lo:hi] == MASK
        total = block_mask.sum(1, keepdim=True)
        counts = torch.zeros(x.shape[0], steps, dtype=torch.long) + total // steps
        for j in range(x.shape[0]):
            counts[j, : int(total[j] % steps)] += 1
        for i in range(steps):
            mask_index = x == MASK
            if cfg_scale > 0:
                un_x = x.clone()
                un_x[prompt_index] = MASK
                am = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
                logits = model(torch.cat([x, un_x]), attention_mask=am)
                cond, un = torch.chunk(logits, 2, dim=0)
                logits = un + (cfg_scale + 1) * (cond - un)
            else:
                logits = model(x, attention_mask=attention_mask)
            x0 = logits.argmax(-1)
            p = F.softmax(logits.double(), dim=-1)
            if remasking == "low_confidence":
                x0_p = p.gather(-1, x0[..., None]).squeeze(-1)
            elif remasking == "margin":
                top = p.sort(-1, descending=True).values
                x0_p = top[..., 0] - top[..., 1]
            else:  # "entrophy"
                x0_p = (p * torch.log(p + 1e-10)).sum(-1)
            x0_p[:, hi:] = -float("inf")
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, torch.tensor(-float("inf"), dtype=x0_p.dtype))
            transfer = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(confidence.shape[0]):
                transfer[j, torch.topk(confidence[j], k=int(counts[j, i])).indices] = True
            x[transfer] = x0[transfer]
    return x[:, prompt.shape[1]:]


CONFIDENCE = {"low_confidence": "probability", "margin": "margin", "entrophy": "neg_entropy"}


@pytest.mark.parametrize("cfg_scale,remasking", [(0.0, "margin"), (0.0, "entrophy"), (1.0, "low_confidence"),
                                                 (0.5, "margin")])
def test_llada_generate_with_cfg_and_other_measures_left_padded(llada, cfg_scale, remasking):
    ids = prompts(2, 9, seed=30)
    attention_mask = torch.ones_like(ids)
    attention_mask[1, :3] = 0
    ids[1, :3] = 251
    with torch.no_grad():
        expected = llada_generate(llada, ids, attention_mask, steps=8, gen_length=16, block_length=8,
                                  cfg_scale=cfg_scale, remasking=remasking)
    result = dvlm.generate(llada, ids, attention_mask=attention_mask, sampler={
        "kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8, "cfg_scale": cfg_scale,
        "confidence": CONFIDENCE[remasking]})
    assert torch.equal(result.token_ids, expected)


def fast_dllm_generate(model, prompt, gen_length, block_length, threshold, cache):
    """Fast-dLLM v1 ``generate_with_prefix_cache`` / ``generate_with_dual_cache`` at temperature 0 with the
    threshold rule (inference_anchors.md §2.1), written against the backbone's cache arguments."""
    p = prompt.shape[1]
    n = p + gen_length
    x = torch.full((prompt.shape[0], n), MASK, dtype=torch.long)
    x[:, :p] = prompt
    kv = model.new_cache(prompt.shape[0], n)
    nfe = 0
    for lo in range(p, n, block_length):
        hi = lo + block_length
        logits = model(x, cache=kv, attend_end=n)[:, lo:hi]  # refresh: full forward, first step of the block
        nfe += 1
        while True:
            masked = x[:, lo:hi] == MASK
            probs = F.softmax(logits.double(), -1)
            x0 = probs.argmax(-1)
            confidence = torch.where(masked, probs.gather(-1, x0[..., None]).squeeze(-1), -float("inf"))
            for j in range(x.shape[0]):
                k = int(masked[j].sum())
                if k == 0:
                    continue
                order = torch.topk(confidence[j], k).indices
                keep = [order[0]] + [i for i in order[1:] if confidence[j, i] >= threshold]
                x[j, lo + torch.stack(keep)] = x0[j, torch.stack(keep)]
            if not bool((x[:, lo:hi] == MASK).any()):
                break
            window_end = hi if cache == "dual" else n
            logits = model(x[:, lo:window_end], cache=kv, cache_start=lo, attend_end=n)[:, : hi - lo]
            nfe += 1
    return x[:, p:], nfe


@pytest.mark.parametrize("cache", ["dual", "fast_dllm_prefix"])
def test_fast_dllm_threshold_decoding_with_its_caches(llada, cache):
    ids = prompts(1, 10, seed=31)
    with torch.no_grad():
        expected, nfe = fast_dllm_generate(llada, ids, gen_length=24, block_length=8, threshold=0.3, cache=cache)
    result = dvlm.generate(llada, ids, sampler={"kind": "parallel", "gen_length": 24, "block_length": 8,
                                                 "threshold": 0.3, "cache": cache})
    assert torch.equal(result.token_ids, expected) and result.nfe == nfe
    assert nfe < 24  # the threshold committed several tokens in some steps
