"""Dream's ``diffusion_generate`` (and LaViDa-Dream's variant of it).

One window (the whole answer). At each step Dream proposes a token at every masked position from the
tempered, top-p/top-k filtered softmax, and commits ``k`` of them: the most confident (``maskgit_plus``:
p(x0), ``topk_margin``: p1 - p2, ``entropy``: negative entropy), or ``k`` positions drawn from
``softmax(confidence / alg_temp)``. ``k`` follows Dream's timestep rule (``dvlm.plugins.schedules.dream``)
or, as in LaViDa-Dream, a named schedule computed once at the start. ``origin`` instead reveals each mask
independently with probability ``1 - s/t``.

With the exact prefix cache (LaViDa-Dream), answer token 0 is the argmax of the prefill's prediction for
the first answer position (the logits of the last prompt position, before any filtering) and is never
re-masked. The backbone returns aligned logits, so the right shift of Dream's head is not handled here.

Departures: counts use each row's own mask count (Dream averages over the batch); steps that commit
nothing are skipped without a forward; confidences are float32 (Dream ranks in the model dtype).
"""

from __future__ import annotations

import torch

from dvlm.core.errors import SamplerError
from dvlm.plugins.samplers.canvas import Canvas, StopTracker, resolve_tokens
from dvlm.plugins.samplers.commit import FixedCount
from dvlm.plugins.samplers.params import (
    MarginParams,
    NegEntropyParams,
    ProbabilityParams,
)
from dvlm.plugins.samplers.proposals import propose_dream
from dvlm.plugins.samplers.steps import build, step_event
from dvlm.plugins.schedules.dream import dream_counts

CONFIDENCE_OF_ALG = {"maskgit_plus": ProbabilityParams, "topk_margin": MarginParams, "entropy": NegEntropyParams}


def _no_confidence(probs, chosen, generator=None):
    """``origin`` reveals positions at random: no ranking."""
    return torch.ones(chosen.shape, device=chosen.device)


class DreamSampler:
    def __init__(self, params) -> None:
        self.params = params
        self.iterations = params.steps
        if params.step_ratio is not None:
            self.iterations = int(params.gen_length * params.step_ratio)
            if not 1 <= self.iterations <= params.steps:
                raise SamplerError(
                    f"step_ratio={params.step_ratio} gives {self.iterations} steps for gen_length={params.gen_length}; "
                    f"it must be between 1 and steps={params.steps}"
                )
        self.schedule = None if params.schedule is None else build("schedules", params.schedule)
        self.confidence = (None if params.alg == "origin"
                           else build("confidence_measures", CONFIDENCE_OF_ALG[params.alg]()))
        self.rule = FixedCount()

    def counts(self, num_masked: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` commits per step for rows with ``num_masked [B]`` masks."""
        if self.schedule is not None:
            return self.schedule.counts(num_masked, self.iterations)
        p = self.params
        rows = [dream_counts(int(m), p.steps, p.eps, self.iterations) for m in num_masked.cpu()]
        return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), self.iterations)

    def run(self, backbone, prompt, generator: torch.Generator | None = None):
        """Yields a ``StepEvent`` per step; returns the finished ``Canvas``."""
        p = self.params
        canvas = Canvas(backbone, prompt, p.gen_length)
        banned = torch.tensor(resolve_tokens(p.suppress_tokens, canvas.tokens), dtype=torch.long, device=canvas.device)
        stopper = StopTracker(canvas, p.early_stop)
        policy = build("cache_policies", p.cache)
        policy.start(canvas)
        start, end = canvas.prompt_length, canvas.length
        if policy.name == "prefix":
            self._first_token_from_prefill(canvas, policy)
            stopper.update()
        if p.alg == "origin":  # no counts: each mask is revealed with probability 1 - s/t
            counts = torch.ones(canvas.batch_size, self.iterations, dtype=torch.int64)
        else:
            counts = self.counts(canvas.masked(start, end).sum(-1))  # [B, n] CPU
        timesteps = torch.linspace(1, p.eps, p.steps + 1)
        refresh = True
        for step, count in enumerate(counts.unbind(1)):
            if not bool(count.any()):
                continue
            if stopper.all_done():
                break
            logits, offset = policy.logits(canvas, start, end, refresh)
            refresh = False
            logits = logits[:, start - offset : end - offset]  # [B, G, V]
            candidates = stopper.candidates(start, end)  # [B, G]
            if p.alg == "origin":
                last = step == self.iterations - 1
                reveal = 1.0 if last else float(1 - timesteps[step + 1] / timesteps[step])
                uniform = torch.rand(candidates.shape, generator=generator, device=canvas.device)
                commit = candidates & (uniform < reveal)
                x0, confidence = self._propose(logits, candidates, banned, generator, _no_confidence)
            else:
                x0, confidence = self._propose(logits, candidates, banned, generator, self.confidence)
                if p.alg_temp:
                    commit = self._draw_positions(confidence, candidates, count, generator)
                else:
                    commit = self.rule(confidence, candidates, count.to(canvas.device))
            canvas.commit(start, commit, x0)
            stopper.update()
            yield step_event(canvas, step, 0, start, commit, confidence)
        return stopper.finish()

    def _propose(self, logits, candidates, banned, generator, confidence):
        p = self.params
        return propose_dream(logits, candidates, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k, banned=banned,
                             confidence=confidence, generator=generator)

    def _draw_positions(self, confidence, candidates, count, generator) -> torch.Tensor:
        """``count`` positions per row drawn without replacement from ``softmax(confidence / alg_temp)`` over the
        candidates, as the top ``count`` of ``confidence / alg_temp + Gumbel noise`` (Gumbel-top-k: the same
        distribution as Dream's ``multinomial``). A row with fewer candidates than ``count`` commits them all,
        a finished row (no candidates) nothing."""
        uniform = torch.rand(confidence.shape, generator=generator, device=confidence.device)
        perturbed = confidence / self.params.alg_temp - torch.log(-torch.log(uniform))
        return self.rule(perturbed, candidates, count.to(confidence.device))

    def _first_token_from_prefill(self, canvas, policy) -> None:
        """LaViDa-Dream: answer token 0 := argmax of the prefill's prediction for it, if it is masked.

        The prediction for position P is the head applied to the prefill's last hidden state; a one-token
        window at P reads exactly that (the cache keeps the prefill's hidden state at P - 1).
        """
        p = canvas.prompt_length
        logits = canvas.forward(p, p + 1, cache=policy.cache, attend_end=p + 1)  # [B, 1, V]
        first = logits[:, 0].argmax(-1, keepdim=True)  # [B, 1]
        canvas.commit(p, canvas.masked(p, p + 1), first)
