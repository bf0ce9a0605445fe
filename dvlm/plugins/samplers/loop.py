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

Host syncs: none inside a step. The step (``sample_step``: proposals on every position of the block, the commit
rule, the tokens to write) has static shapes within a block and never asks the host anything, so it compiles
with ``fullgraph=True`` (``compile: true`` runs it, and the backbone, under ``torch.compile``; ``compile:
reduce-overhead`` adds CUDA graphs: the KV buffers are static addresses, every step of a block has one shape).
Around the steps the loop reads the device once per block (the schedule's plan from the block's mask count) and, only
where the number of steps depends on the tokens, one flag per step: a rule that is not ``plan_exact`` (the
parallel rules: is the block filled? a late answer would cost a forward per block) and early stop (is every row
finished? LLaDA-V then stops, saving the remaining forwards; on CUDA this flag is read a step late, so the host
never waits for the step it launched, at the cost of at most one forward). Step events are built only when
someone listens (``PendingStep``).

Shapes: B batch, W block (window) length, V vocabulary, n planned steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from dvlm.core.input_checks import check_ids
from dvlm.plugins.samplers.canvas import Canvas, StopTracker, compiled, new_step, resolve_tokens
from dvlm.plugins.samplers.steps import PendingStep, build

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


def sample_step(parts: Parts, banned: torch.Tensor, generator: torch.Generator | None):
    """The sampling half of a step: ``(logits [B, W, V], candidates [B, W], count [B] | None) -> (commit [B, W],
    x0 [B, W], confidence [B, W])``. Static shapes, no host sync (a test compiles it with ``fullgraph=True``)."""

    def step(logits: torch.Tensor, candidates: torch.Tensor, count: torch.Tensor | None):
        x0, confidence = parts.propose(logits, candidates, banned, generator)
        return parts.rule(confidence, candidates, count), x0, confidence

    return step


def denoise(backbone, prompt, params, parts: Parts, generator: torch.Generator | None = None):
    """Yields a ``PendingStep`` per step (its ``resolve()`` is the ``StepEvent``); returns the finished ``Canvas``."""
    compile_step = getattr(params, "compile", False)
    canvas = Canvas(backbone, prompt, params.gen_length, cfg_scale=parts.cfg_scale, compile=compile_step)
    banned = torch.tensor(resolve_tokens(params.suppress_tokens, canvas.tokens), dtype=torch.long, device=canvas.device)
    check_ids(banned, backbone.vocab_size, "suppress_tokens")
    stopper = StopTracker(canvas, params.early_stop)
    policy = build("cache_policies", params.cache)
    new_step(compile_step)
    policy.start(canvas)
    if parts.prepare is not None:
        parts.prepare(canvas, policy)
        stopper.update()
    plan_exact = getattr(parts.rule, "plan_exact", False)
    step_fn = sample_step(parts, banned, generator)
    if compile_step:
        step_fn = compiled(step_fn, compile_step)
    step = 0
    for block, (first, last) in enumerate(parts.blocks):
        if stopper.all_done():  # one flag per block: a later block starting after every row's stop is skipped
            return stopper.finish()
        start, end = canvas.prompt_length + first, canvas.prompt_length + last
        plan = parts.plan(canvas.masked(start, end).sum(-1))  # [B, n] on the CPU, or None
        refresh = True  # the block's first forward (Fast-dLLM caches refresh there)
        for count in step_counts(plan, plan_exact, canvas.device, lambda: stopper.candidates(start, end)):
            new_step(compile_step)
            logits, offset = policy.logits(canvas, start, end, refresh)
            refresh = False
            candidates = stopper.candidates(start, end)  # [B, W]
            commit, x0, confidence = step_fn(logits[:, start - offset : end - offset], candidates, count)
            canvas.flag_nan(confidence)
            canvas.commit(start, commit, x0)
            stopper.update()
            yield PendingStep(canvas, step, block, start, commit, confidence)
            step += 1
            if stopper.finished_a_step_ago():  # early stop: on CUDA the previous step's flag (no wait)
                return stopper.finish()
    return stopper.finish()


def step_counts(plan: torch.Tensor | None, plan_exact: bool, device: torch.device,
                candidates: Callable[[], torch.Tensor]) -> Iterator[torch.Tensor | None]:
    """The ``count [B]`` (on ``device``) of each step of a block.

    The plan's columns first (copied to the device once per block), skipping steps that would commit nothing
    (no forward; known on the host from the CPU plan). Unless the rule is ``plan_exact``, a step runs only
    while the block has candidates (one flag per step), and after the plan more steps follow until it has none,
    each with ``count`` = the candidates left (None when there is no plan)."""
    if plan is not None:
        columns = plan.to(device)  # [B, n]
        for index, commits in enumerate(plan.any(0).tolist()):  # CPU: no device sync
            if not commits:
                continue
            if not plan_exact and not bool(candidates().any()):
                return
            yield columns[:, index]
        if plan_exact:
            return
    while True:
        left = candidates()  # [B, W]
        if not bool(left.any()):
            return
        yield None if plan is None else left.sum(-1)
