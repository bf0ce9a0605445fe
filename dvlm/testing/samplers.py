"""Conformance checks for the sampler family and its parts (samplers, commit rules, confidence measures,
cache policies), run on a tiny random backbone built from the registry."""

from __future__ import annotations

from typing import Any

import torch

from dvlm.core.plugins import get_registry


def _tiny_backbone():
    """A tiny LLaDA (mask 250, eos/pad 251) with random weights, or None if no ``llada`` backbone is loaded."""
    registry = get_registry()
    if "llada" not in registry.kinds("backbones"):
        return None
    entry = registry.get("backbones", "llada")
    torch.manual_seed(0)
    return entry.factory(entry.params.for_tests()).eval()


def check_confidence_measure(measure: Any) -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.5, 0.0]])
    chosen = probs.argmax(-1)
    out = measure(probs, chosen, torch.Generator().manual_seed(0))
    assert out.shape == chosen.shape and out.is_floating_point(), f"confidence must be [N] float, got {out.shape}"
    assert bool(torch.isfinite(out).all())


def check_commit_rule(rule: Any) -> None:
    g = torch.Generator().manual_seed(0)
    confidence = torch.rand(3, 8, generator=g)
    candidates = torch.rand(3, 8, generator=g) < 0.6
    candidates[2] = False  # a row with nothing left to commit
    count = torch.tensor([2, 1, 0])
    commit = rule(confidence, candidates, count)
    assert commit.dtype == torch.bool and commit.shape == candidates.shape
    assert not bool((commit & ~candidates).any()), "committed a position that is not a candidate"
    assert not bool(commit[2].any()), "committed in a row without candidates"
    assert bool(commit[:2].any(-1).all()), "a row with candidates must commit at least one position"
    unscheduled = rule(confidence, candidates, None)  # under a sampler without a schedule (parallel)
    assert unscheduled.dtype == torch.bool and not bool((unscheduled & ~candidates).any())
    assert bool(unscheduled[:2].any(-1).all()), "with count=None a row with candidates must still commit"


def check_cache_policy(policy: Any) -> None:
    """The policy's window covers the requested block, for the refresh step and for a later step."""
    from dvlm.core.generation import PromptBatch
    from dvlm.plugins.samplers.canvas import Canvas

    backbone = _tiny_backbone()
    if backbone is None:
        return
    assert isinstance(getattr(policy, "name", None), str)
    canvas = Canvas(backbone, PromptBatch(torch.randint(0, 200, (2, 5))), 8)
    with torch.inference_mode():
        policy.start(canvas)
        for start, end, refresh in [(5, 9, True), (5, 9, False), (9, 13, True), (9, 13, False)]:
            logits, offset = policy.logits(canvas, start, end, refresh)
            assert logits.shape[0] == 2 and logits.shape[2] == backbone.vocab_size
            assert offset <= start and offset + logits.shape[1] >= end, (
                f"window [{offset}, {offset + logits.shape[1]}) does not cover the block [{start}, {end})")
            canvas.x[:, start] = 7  # commit something so later windows see a changed canvas


def check_sampler(sampler: Any) -> None:
    """``for_tests()`` settings generate on a tiny backbone: every answer position filled, one event per step."""
    from dvlm.core.generation import PromptBatch, run_sampler

    backbone = _tiny_backbone()
    if backbone is None:
        return
    prompt = PromptBatch(torch.randint(0, 200, (2, 5)))
    result = run_sampler(backbone, prompt, sampler, trace=True)
    mask = backbone.special_tokens.mask_id
    assert result.token_ids.shape[0] == 2 and not bool((result.token_ids == mask).any()), "masks left in the answer"
    assert result.nfe >= 1 and len(result.steps) >= 1
    committed = torch.stack([e.committed for e in result.steps]).sum(0)
    assert int(committed.max()) <= 1, "a position was committed twice"
