"""Pieces every sampler loop shares: block layout, building the registered parts, and step events."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dvlm.core.errors import SamplerError
from dvlm.core.generation import StepEvent


def block_layout(gen_length: int, block_length: int | None) -> tuple[int, int]:
    """``(block_length, num_blocks)``; a block longer than the answer is the whole answer (LaViDa's min(128, L))."""
    block = gen_length if block_length is None else min(block_length, gen_length)
    if gen_length % block:
        raise SamplerError(
            f"gen_length={gen_length} is not a multiple of block_length={block}; pick a block_length that "
            f"divides it (e.g. {', '.join(str(d) for d in _divisors(gen_length))})"
        )
    return block, gen_length // block


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0][-4:]


def build(family: str, params):
    from dvlm.core.plugins import get_registry

    return get_registry().build(family, params)


def step_event(canvas, step: int, block: int, start: int, commit: torch.Tensor, confidence: torch.Tensor) -> StepEvent:
    """The event of one step: ``commit``/``confidence [B, W]`` in the window at absolute ``start``."""
    offset = start - canvas.prompt_length
    committed = torch.zeros(canvas.batch_size, canvas.gen_length, dtype=torch.bool, device=canvas.device)
    committed[:, offset : offset + commit.shape[1]] = commit
    scores = torch.full(committed.shape, float("nan"), device=canvas.device)
    scores[:, offset : offset + commit.shape[1]] = torch.where(commit, confidence.float(), float("nan"))
    return StepEvent(step=step, block=block, nfe=canvas.nfe, committed=committed, confidence=scores,
                     tokens=canvas.answer.clone(), kv_rows=canvas.kv_rows_recomputed)


@dataclass
class PendingStep:
    """A step as the loop yields it: ``resolve()`` builds its ``StepEvent``, which costs allocations and a copy
    of the answer, so ``run_sampler`` calls it only when someone listens (``on_step``, ``trace``). Valid until
    the loop resumes (the tokens are read then)."""

    canvas: object
    step: int
    block: int
    start: int
    commit: torch.Tensor
    confidence: torch.Tensor

    def resolve(self) -> StepEvent:
        return step_event(self.canvas, self.step, self.block, self.start, self.commit, self.confidence)
