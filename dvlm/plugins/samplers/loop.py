"""The denoising loop every built-in sampler runs; a sampler kind supplies only what is its own (``Parts``).

Read top to bottom, a generation is::

    canvas = prompt (left-padded) + masked answer (+ infill draft)
    the cache policy starts (e.g. the Prefix-DLM prefill); the kind may prepare (LaViDa-Dream's first token)
    for each block of the answer (semi-autoregressive, left to right):
        plan = how many commits each step of the block makes (a schedule), or None: until the block is filled
        for each step:
            logits for the block (through the cache policy)
            a proposed token and a confidence at every candidate (masked, before an early stop)
            the commit rule picks which proposals to keep (the spec's ``commit_rule``, or the kind's own)
            write them; yield a StepEvent
    early stop turns everything after a row's end token into padding

Host syncs: none per step while the plan alone says when a block is done (the rule declares
``plan_exact``: it commits exactly the planned count, as the fixed-count rule does); otherwise one per
step, to stop when the block has no candidates left, and steps continue past the plan until it is filled.

Shapes: B batch, W block (window) length, V vocabulary, n planned steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from dvlm.core.input_checks import check_ids
from dvlm.plugins.samplers.canvas import Canvas, StopTracker, resolve_tokens
from dvlm.plugins.samplers.steps import build, step_event

Proposer = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""``(logits [B, W, V], candidates [B, W], banned [k] ids, generator) -> (x0 [B, W], confidence [B, W])``."""


@dataclass
class Parts:
    """What a sampler kind brings to the shared loop."""

    blocks: list[tuple[int, int]]
    """``[start, end)`` of each block in answer coordinates, left to right."""
    plan: Callable[[torch.Tensor], torch.Tensor | None]
    """``num_masked [B]`` of a block at its start -> commits per step ``[B, n]`` (CPU int64), or None."""
    propose: Proposer
    rule: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    """A commit rule: ``(confidence [B, W], candidates [B, W], count [B] | None) -> commit [B, W]``."""
    prepare: Callable[[Canvas, object], None] | None = None
    """Runs once after the cache policy started, before the first step (may commit tokens)."""
    cfg_scale: float = 0.0


def commit_rule(params, default):
    """The spec's ``commit_rule`` built through the registry, or the kind's own rule."""
    return default if params.commit_rule is None else build("commit_rules", params.commit_rule)


def denoise(backbone, prompt, params, parts: Parts, generator: torch.Generator | None = None):
    """Yields a ``StepEvent`` per step; returns the finished ``Canvas``."""
    canvas = Canvas(backbone, prompt, params.gen_length, cfg_scale=parts.cfg_scale)
    banned = torch.tensor(resolve_tokens(params.suppress_tokens, canvas.tokens), dtype=torch.long, device=canvas.device)
    check_ids(banned, backbone.vocab_size, "suppress_tokens")
    stopper = StopTracker(canvas, params.early_stop)
    policy = build("cache_policies", params.cache)
    policy.start(canvas)
    if parts.prepare is not None:
        parts.prepare(canvas, policy)
        stopper.update()
    plan_exact = getattr(parts.rule, "plan_exact", False)
    step = 0
    for block, (first, last) in enumerate(parts.blocks):
        start, end = canvas.prompt_length + first, canvas.prompt_length + last
        plan = parts.plan(canvas.masked(start, end).sum(-1))  # [B, n] or None
        refresh = True  # the block's first forward (Fast-dLLM caches refresh there)
        for count in step_counts(plan, plan_exact, lambda: stopper.candidates(start, end)):
            if stopper.all_done():
                return stopper.finish()
            logits, offset = policy.logits(canvas, start, end, refresh)
            refresh = False
            candidates = stopper.candidates(start, end)  # [B, W]
            x0, confidence = parts.propose(logits[:, start - offset : end - offset], candidates, banned, generator)
            commit = parts.rule(confidence, candidates, None if count is None else count.to(canvas.device))
            canvas.commit(start, commit, x0)
            stopper.update()
            yield step_event(canvas, step, block, start, commit, confidence)
            step += 1
    return stopper.finish()


def step_counts(plan: torch.Tensor | None, plan_exact: bool,
                candidates: Callable[[], torch.Tensor]) -> Iterator[torch.Tensor | None]:
    """The ``count`` of each step of a block.

    The plan's columns first, skipping steps that would commit nothing (no forward). Unless the rule is
    ``plan_exact``, a step runs only while the block has candidates, and after the plan more steps follow
    until it has none, each with ``count`` = the candidates left (None when there is no plan)."""
    if plan is not None:
        for count in plan.unbind(1):  # [B]
            if not bool(count.any()):
                continue
            if not plan_exact and not bool(candidates().any()):
                return
            yield count
        if plan_exact:
            return
    while True:
        left = candidates()  # [B, W]
        if not bool(left.any()):
            return
        yield None if plan is None else left.sum(-1)
