"""SlowFast sampling (Wei et al., "Accelerating Diffusion Large Language Models with SlowFast Sampling: The Three
Golden Principles", arXiv:2506.10848): a phase-adaptive parallel rule.

Each block alternates two phases, per row:

- **slow** (exploration): each step estimates where the next span ends, ``est`` = 1 + the farthest masked
  position at or after the decoded prefix ``done`` whose confidence is >= ``span_confidence`` (``done + 1`` if
  none), keeping the last ``stability_window`` estimates; it commits, in ``[done, block end)``, every candidate
  with confidence >= ``high_confidence`` if there are at least two, else the most confident one. Once the
  estimates have converged (population std < ``stability_std``; span end = the last estimate) or after
  ``exploration_steps`` slow steps (span end = their mean, truncated), the row turns fast;
- **fast** (acceleration): commits inside the span ``[done, span end)`` by the same high-confidence rule, until
  the span is filled; then ``done`` = span end and the row is slow again.

Certainty (the confidence thresholds), convergence (the stable span estimate) and position (a contiguous span
after the decoded prefix) are the paper's three principles; the defaults are the reference implementation's
(``k_exploration_steps=6``, ``cycle_len_confidence_threshold=0.3``, ``cycle_length_stability_window=2``,
``..._std_dev_threshold=1.0``, ``high_confidence_threshold=0.9``). Departures: the state is vectorised over the
batch (no per-row Python loop, no host sync in the rule); a row whose scope has no candidate left commits its
most confident candidate anywhere in the block (progress is guaranteed); the reference's reuse of the logits
after the span (a cache) is a cache policy's business here (``cache:``).
"""

from __future__ import annotations

import torch

from dvlm.plugins.samplers.commit import ranks
from dvlm.plugins.samplers.loop import Parts, denoise
from dvlm.plugins.samplers.proposals import propose_llada
from dvlm.plugins.samplers.steps import block_layout, build


class SlowFastRule:
    """The phase state of one generation (``[B]`` tensors) and its commit rule; ``start_block`` resets it."""

    def __init__(self, params) -> None:
        self.p = params

    def start_block(self, num_masked: torch.Tensor) -> None:
        """At a block's start (the loop's ``plan`` hook): every row slow, nothing decoded, no estimates."""
        batch, device = num_masked.shape[0], num_masked.device
        self.done = torch.zeros(batch, dtype=torch.long, device=device)  # decoded prefix of the block
        self.span_end = torch.zeros(batch, dtype=torch.long, device=device)
        self.fast = torch.zeros(batch, dtype=torch.bool, device=device)
        self.history = torch.zeros(batch, self.p.stability_window, device=device)  # last span-end estimates
        self.seen = torch.zeros(batch, dtype=torch.long, device=device)  # estimates since the phase began

    def __call__(self, confidence: torch.Tensor, candidates: torch.Tensor, count=None) -> torch.Tensor:
        """``confidence``/``candidates [B, W]`` of the block -> ``commit [B, W]``."""
        p, width = self.p, confidence.shape[-1]
        position = torch.arange(width, device=confidence.device)[None, :]  # [1, W]
        # a fast row whose span is filled moves its decoded prefix and turns slow again
        span_left = (candidates & (position >= self.done[:, None]) & (position < self.span_end[:, None])).any(-1)
        finished = self.fast & ~span_left
        self.done = torch.where(finished, self.span_end, self.done)
        self.fast &= ~finished
        self.seen = torch.where(finished, 0, self.seen)

        # slow rows: estimate the span end from what lies at or after the decoded prefix
        after = candidates & (position >= self.done[:, None])  # [B, W]
        sure = after & (confidence >= p.span_confidence)
        farthest = torch.where(sure, position, -1).amax(-1)  # [B]
        estimate = torch.where(farthest >= 0, farthest + 1, self.done + 1).clamp(1, width)
        slow = ~self.fast
        pushed = torch.cat([self.history[:, 1:], estimate[:, None].float()], dim=1)  # [B, window]
        self.history = torch.where(slow[:, None], pushed, self.history)
        self.seen = self.seen + slow.long()
        full = self.seen >= p.stability_window  # the history holds this phase's estimates only
        stable = full & (self.history.std(-1, unbiased=False) < p.stability_std)
        explored = self.seen >= p.exploration_steps  # >= stability_window (validated)
        mean_end = self.history.mean(-1).long().clamp(min=1)
        turn_fast = slow & (stable | explored)
        self.span_end = torch.where(turn_fast, torch.where(stable, estimate, mean_end), self.span_end)

        # commit: >= 2 high-confidence candidates in scope, else the most confident one in scope
        scope = torch.where(self.fast[:, None], after & (position < self.span_end[:, None]), after)
        scope = torch.where(scope.any(-1, keepdim=True), scope, candidates)  # nothing in scope: the whole block
        high = scope & (confidence >= p.high_confidence)
        top = scope & (ranks(confidence, scope) == 0)
        self.fast |= turn_fast
        return torch.where(high.sum(-1, keepdim=True) >= 2, high, top)


class SlowFastSampler:
    def __init__(self, params) -> None:
        self.params = params
        self.block_length, self.num_blocks = block_layout(params.gen_length, params.block_length)
        self.confidence = build("confidence_measures", params.confidence)

    def run(self, backbone, prompt, generator: torch.Generator | None = None):
        """Yields a ``StepEvent`` per step; returns the finished ``Canvas``."""
        p = self.params
        rule = SlowFastRule(p)  # fresh phase state for every generation

        def propose(logits, candidates, banned, generator):
            return propose_llada(logits, candidates, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
                                 banned=banned, confidence=self.confidence, generator=generator)

        def plan(num_masked):
            rule.start_block(num_masked)
            return None  # no schedule: steps go on until the block is filled

        blocks = [(b * self.block_length, (b + 1) * self.block_length) for b in range(self.num_blocks)]
        parts = Parts(blocks=blocks, plan=plan, propose=propose, rule=rule)
        return (yield from denoise(backbone, prompt, p, parts, generator))
