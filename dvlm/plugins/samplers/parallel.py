"""Fast-dLLM parallel decoding: blocks decoded left to right, each step committing every candidate the rule
accepts (confidence threshold tau, or the factor rule), at least the most confident one, until the block is
filled. The number of steps per block adapts to the model's certainty.

Rows of a batch finish blocks at different steps (ragged completion): a finished row has no candidates and
commits nothing while the others go on. The rule itself is vectorised; the loop checks once per step
whether any row still has masks in the block (one host sync per step).
"""

from __future__ import annotations

import torch

from dvlm.plugins.samplers.canvas import Canvas, StopTracker, resolve_tokens
from dvlm.plugins.samplers.params import FactorRuleParams, ThresholdRuleParams
from dvlm.plugins.samplers.proposals import propose_llada
from dvlm.plugins.samplers.steps import block_layout, build, step_event


class ParallelSampler:
    def __init__(self, params) -> None:
        self.params = params
        self.block_length, self.num_blocks = block_layout(params.gen_length, params.block_length)
        rule = (ThresholdRuleParams(threshold=params.threshold) if params.threshold is not None
                else FactorRuleParams(factor=params.factor))
        self.rule = build("commit_rules", rule)
        self.confidence = build("confidence_measures", params.confidence)

    def run(self, backbone, prompt, generator: torch.Generator | None = None):
        """Yields a ``StepEvent`` per step; returns the finished ``Canvas``."""
        p = self.params
        canvas = Canvas(backbone, prompt, p.gen_length)
        banned = torch.tensor(resolve_tokens(p.suppress_tokens, canvas.tokens), dtype=torch.long, device=canvas.device)
        stopper = StopTracker(canvas, p.early_stop)
        policy = build("cache_policies", p.cache)
        policy.start(canvas)
        step = 0
        for block in range(self.num_blocks):
            start = canvas.prompt_length + block * self.block_length
            end = start + self.block_length
            refresh = True
            while True:
                candidates = stopper.candidates(start, end)  # [B, K]
                if not bool(candidates.any()):
                    break
                logits, offset = policy.logits(canvas, start, end, refresh)
                refresh = False
                x0, confidence = propose_llada(
                    logits[:, start - offset : end - offset], candidates, temperature=p.temperature, top_p=p.top_p,
                    top_k=p.top_k, banned=banned, confidence=self.confidence, generator=generator,
                )
                commit = self.rule(confidence, candidates, None)
                canvas.commit(start, commit, x0)
                stopper.update()
                yield step_event(canvas, step, block, start, commit, confidence)
                step += 1
        return stopper.finish()
