"""The fixed-count remasking sampler of LLaDA, LaViDa, LLaDA-V and MMaDA.

The answer is decoded in semi-autoregressive blocks, left to right. At the start of a block the schedule
turns the block's mask count into per-step counts; each step proposes a token at every position of the
block, ranks the still-masked ones by confidence and commits the most confident ``k`` (never re-masking).
Positions after the block are visible to the model as masks but never committed.

Reference behaviours reproduced token for token (fixtures): LLaDA ``generate`` (``steps`` split evenly
among blocks, linear schedule, batch with left padding) and LaViDa ``generate`` (``step_ratio``, named
schedules, Prefix-DLM cache or full recompute). Departures, all documented in the presets: ``steps=None``
means ``gen_length`` (LaViDa ignores its ``steps`` argument); steps that would commit nothing are skipped
without a forward; confidences are float32.
"""

from __future__ import annotations

import torch

from dvlm.core.errors import SamplerError
from dvlm.plugins.samplers.commit import FixedCount
from dvlm.plugins.samplers.loop import Parts, commit_rule, denoise
from dvlm.plugins.samplers.proposals import propose_llada
from dvlm.plugins.samplers.steps import block_layout, build


def steps_per_block(gen_length: int, steps: int | None, num_blocks: int, step_ratio: float | None) -> int:
    """LLaDA: ``steps / num_blocks`` (must divide); LaViDa: then ``int(. * step_ratio)``."""
    steps = gen_length if steps is None else steps
    if steps % num_blocks:
        raise SamplerError(
            f"steps={steps} cannot be split evenly over {num_blocks} blocks (gen_length / block_length); "
            f"use a multiple of {num_blocks}"
        )
    per_block = steps // num_blocks
    if step_ratio is not None:
        per_block = int(per_block * step_ratio)
        if per_block < 1:
            raise SamplerError(f"step_ratio={step_ratio} leaves 0 steps per block; raise it or steps")
    return per_block


class FixedCountSampler:
    def __init__(self, params) -> None:
        self.params = params
        self.block_length, self.num_blocks = block_layout(params.gen_length, params.block_length)
        self.steps_per_block = steps_per_block(params.gen_length, params.steps, self.num_blocks, params.step_ratio)
        self.schedule = build("schedules", params.schedule)
        self.confidence = build("confidence_measures", params.confidence)
        self.rule = commit_rule(params, FixedCount())

    def run(self, backbone, prompt, generator: torch.Generator | None = None):
        """Yields a step per step (a ``PendingStep``, see ``loop.py``); returns the finished ``Canvas``."""
        p = self.params

        def propose(logits, candidates, banned, generator):
            return propose_llada(logits, candidates, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
                                 banned=banned, confidence=self.confidence, generator=generator)

        blocks = [(b * self.block_length, (b + 1) * self.block_length) for b in range(self.num_blocks)]
        parts = Parts(blocks=blocks, plan=lambda masked: self.schedule.counts(masked, self.steps_per_block),
                      propose=propose, rule=self.rule, cfg_scale=p.cfg_scale)
        return (yield from denoise(backbone, prompt, p, parts, generator))
