"""Fast-dLLM parallel decoding: blocks decoded left to right, each step committing every candidate the rule
accepts (confidence threshold tau, or the factor rule), at least the most confident one, until the block is
filled. The number of steps per block adapts to the model's certainty.

Rows of a batch finish blocks at different steps (ragged completion): a finished row has no candidates and
commits nothing while the others go on. The rule itself is vectorised; the shared loop (``loop.py``)
checks once per step whether any row still has masks in the block (one host sync per step). The rule is the
spec's ``commit_rule`` (threshold 0.9 by default, or factor, or any registered rule; it receives
``count=None``: there is no schedule here).
"""

from __future__ import annotations

import torch

from dvlm.plugins.samplers.loop import Parts, denoise
from dvlm.plugins.samplers.proposals import propose_llada
from dvlm.plugins.samplers.steps import block_layout, build


class ParallelSampler:
    def __init__(self, params) -> None:
        self.params = params
        self.block_length, self.num_blocks = block_layout(params.gen_length, params.block_length)
        self.rule = build("commit_rules", params.commit_rule)
        self.confidence = build("confidence_measures", params.confidence)

    def run(self, backbone, prompt, generator: torch.Generator | None = None):
        """Yields a step per step (a ``PendingStep``, see ``loop.py``); returns the finished ``Canvas``."""
        p = self.params

        def propose(logits, candidates, banned, generator):
            return propose_llada(logits, candidates, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
                                 banned=banned, confidence=self.confidence, generator=generator)

        blocks = [(b * self.block_length, (b + 1) * self.block_length) for b in range(self.num_blocks)]
        parts = Parts(blocks=blocks, plan=lambda masked: None, propose=propose, rule=self.rule)
        return (yield from denoise(backbone, prompt, p, parts, generator))
