"""Masked-suffix pruning over the exact prefix cache, after DPad (Chen et al., "DPad: Efficient Diffusion
Language Models with Suffix Dropout", arXiv:2508.14148) and Sparse-LaViDa (LaViDa with the distant masked
suffix truncated from the forward).

Rule: a step runs the answer positions from the start of the answer up to ``keep`` positions past the current
block, and drops every masked position after that from the forward (DPad's sliding window, with its dropout
rate 1 beyond it). Kept exactly: the prompt (LaViDa's Prefix-DLM cache, computed once, never attending to the
answer), every decoded position, the current block, every fixed token of an infill draft (the window always
reaches the last one), and each kept token's own RoPE position. Approximate: the pruned masks no longer act as
attention sinks for the kept rows. ``kv_rows_recomputed`` counts the kept answer rows each step.
"""

from __future__ import annotations


class SuffixPruningCache:
    name = "suffix_pruning"

    def __init__(self, params) -> None:
        self.keep = params.keep
        self.cache = None

    def start(self, canvas) -> None:
        self.cache = canvas.new_cache()
        p = canvas.prompt_length
        canvas.forward(0, p, cache=self.cache, attend_end=p, rows=(p, p))  # fills the cache, no logits
        fixed = (canvas.answer != canvas.tokens.mask_id).any(0).nonzero()  # draft tokens (one sync, here only)
        self.fixed_end = canvas.prompt_length + (int(fixed.max()) + 1 if fixed.numel() else 0)

    def logits(self, canvas, block_start: int, block_end: int, refresh: bool):
        p = canvas.prompt_length
        end = min(canvas.length, max(block_end + self.keep, self.fixed_end))
        return canvas.forward(p, end, cache=self.cache, attend_end=end, rows=(block_start, block_end)), block_start
