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

With ``commit_rule`` set, that rule picks the positions instead of the top ``k`` (it receives ``k`` as
``count``). Departures: counts use each row's own mask count (Dream averages over the batch); steps that commit
nothing are skipped without a forward; confidences are float32 (Dream ranks in the model dtype); ``alg_temp``
draws its positions by Gumbel-top-k (the distribution of Dream's ``multinomial``, another random stream, and
no crash once a row has fewer candidates than ``k`` or none).
"""

from __future__ import annotations

import torch

from dvlm.core.errors import SamplerError
from dvlm.plugins.samplers.commit import FixedCount
from dvlm.plugins.samplers.loop import Parts, commit_rule, denoise
from dvlm.plugins.samplers.params import (
    MarginParams,
    NegEntropyParams,
    ProbabilityParams,
)
from dvlm.plugins.samplers.proposals import propose_dream
from dvlm.plugins.samplers.steps import build
from dvlm.plugins.schedules.dream import dream_counts

CONFIDENCE_OF_ALG = {"maskgit_plus": ProbabilityParams, "topk_margin": MarginParams, "entropy": NegEntropyParams}


def _no_confidence(probs, chosen, generator=None):
    """``origin`` reveals positions at random: no ranking."""
    return torch.ones(chosen.shape, device=chosen.device)


class OriginReveal:
    """``alg: origin``: step i reveals each candidate with probability ``1 - t_{i+1} / t_i`` (all at the
    last step), ``t = linspace(1, eps, steps + 1)``. Stateful: the i-th call is step i (its plan skips none)."""

    plan_exact = True  # the last step reveals everything left

    def __init__(self, steps: int, iterations: int, eps: float, generator: torch.Generator | None) -> None:
        self.timesteps = torch.linspace(1, eps, steps + 1)
        self.iterations = iterations
        self.generator = generator
        self.step = 0

    def __call__(self, confidence, candidates, count=None):
        last = self.step == self.iterations - 1
        reveal = 1.0 if last else float(1 - self.timesteps[self.step + 1] / self.timesteps[self.step])
        self.step += 1
        uniform = torch.rand(candidates.shape, generator=self.generator, device=candidates.device)
        return candidates & (uniform < reveal)


class GumbelTopK:
    """``alg_temp > 0``: ``count`` positions per row drawn without replacement from
    ``softmax(confidence / alg_temp)`` over the candidates, as the top ``count`` of ``confidence / alg_temp
    + Gumbel noise`` (Gumbel-top-k: the distribution of Dream's ``multinomial``). A row with fewer
    candidates than ``count`` commits them all, a finished row (no candidates) nothing."""

    plan_exact = True

    def __init__(self, alg_temp: float, generator: torch.Generator | None) -> None:
        self.alg_temp = alg_temp
        self.generator = generator
        self.top = FixedCount()

    def __call__(self, confidence, candidates, count):
        uniform = torch.rand(confidence.shape, generator=self.generator, device=confidence.device)
        return self.top(confidence / self.alg_temp - torch.log(-torch.log(uniform)), candidates, count)


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
        self.confidence = (_no_confidence if params.alg == "origin"
                           else build("confidence_measures", CONFIDENCE_OF_ALG[params.alg]()))

    def counts(self, num_masked: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` commits per step for rows with ``num_masked [B]`` masks."""
        if self.params.alg == "origin":  # no counts: each mask is revealed with probability 1 - s/t
            return torch.ones(len(num_masked), self.iterations, dtype=torch.int64)
        if self.schedule is not None:
            return self.schedule.counts(num_masked, self.iterations)
        p = self.params
        rows = [dream_counts(int(m), p.steps, p.eps, self.iterations) for m in num_masked.cpu()]
        return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), self.iterations)

    def rule(self, generator):
        """The spec's commit rule, else Dream's own: origin's reveal, alg_temp's draw, or the top ``k``."""
        p = self.params
        if p.alg == "origin":
            return OriginReveal(p.steps, self.iterations, p.eps, generator)
        return commit_rule(p, GumbelTopK(p.alg_temp, generator) if p.alg_temp else FixedCount())

    def run(self, backbone, prompt, generator: torch.Generator | None = None):
        """Yields a step per step (a ``PendingStep``, see ``loop.py``); returns the finished ``Canvas``."""
        p = self.params

        def propose(logits, candidates, banned, generator):
            return propose_dream(logits, candidates, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
                                 banned=banned, confidence=self.confidence, generator=generator)

        parts = Parts(blocks=[(0, p.gen_length)], plan=self.counts, propose=propose, rule=self.rule(generator),
                      prepare=first_token_from_prefill)
        return (yield from denoise(backbone, prompt, p, parts, generator))


def first_token_from_prefill(canvas, policy) -> None:
    """LaViDa-Dream with the exact prefix cache: answer token 0 := argmax of the prefill's prediction for it,
    if it is masked, never re-masked.

    For a shifted head (Dream) that prediction is the head on the prefill's last hidden state, which the cache
    keeps: no forward (LaViDa's count). An unshifted backbone predicts position P only from a forward over it.
    """
    if policy.name != "prefix":
        return
    p = canvas.prompt_length
    if canvas.backbone.logits_shifted:
        logits = canvas.backbone.head(policy.cache.hidden_before(p))  # [B, 1, V]: row P - 1 predicts token P
    else:
        logits = canvas.forward(p, p + 1, cache=policy.cache, attend_end=p + 1)  # [B, 1, V]
    first = logits[:, 0].argmax(-1, keepdim=True)  # [B, 1]
    canvas.flag_nan(logits.sum(-1))
    canvas.commit(p, canvas.masked(p, p + 1), first)
