"""Cache policies: what a sampler caches, and which window each step runs.

A policy answers one question per step: "logits for the current block, please", as
``logits(canvas, block_start, block_end, refresh) -> (logits [B, W, V], offset)`` where row i of the
logits is absolute position ``offset + i``; ``refresh`` is True on the first forward of a block. ``start``
runs once before the first step. The built-in policies ask the backbone for the block's rows only (the LM head
never runs on the prompt or on other blocks), so every step of a block returns logits of one static shape.

- ``none``: the whole sequence every step (the references' behaviour; exact).
- ``prefix``: LaViDa's Prefix-DLM. The prompt's K/V are computed once, by a forward over the prompt alone
  (so the prompt never attends to the answer), and every step runs the G answer positions against them:
  exactly the Prefix-DLM attention mask, at a fraction of the cost.
- ``fast_dllm_prefix``: Fast-dLLM's prefix cache. A full forward at the start of each block writes every
  position's K/V and serves the block's first step; the block's later steps run ``[block_start, N)``
  against the K/V of everything before the block, which are stale (approximate).
- ``dual``: Fast-dLLM's dual cache. Same refresh; later steps run the block alone against the stale K/V
  of the prefix *and* of the masked suffix (approximate).

The cache buffers are preallocated once per generation (``canvas.new_cache()``).
"""

from __future__ import annotations


class NoCache:
    name = "none"

    def __init__(self, params=None) -> None:
        self.params = params

    def start(self, canvas) -> None:
        pass

    def logits(self, canvas, block_start: int, block_end: int, refresh: bool):
        return canvas.forward(0, canvas.length, rows=(block_start, block_end)), block_start


class PrefixCache:
    name = "prefix"

    def __init__(self, params=None) -> None:
        self.params = params
        self.cache = None

    def start(self, canvas) -> None:
        self.cache = canvas.new_cache()
        p = canvas.prompt_length
        canvas.forward(0, p, cache=self.cache, attend_end=p, rows=(p, p))  # K/V (and hidden states) only, no logits

    def logits(self, canvas, block_start: int, block_end: int, refresh: bool):
        rows = (block_start, block_end)
        return canvas.forward(canvas.prompt_length, canvas.length, cache=self.cache, attend_end=canvas.length,
                              rows=rows), block_start


class FastDllmPrefixCache:
    name = "fast_dllm_prefix"

    def __init__(self, params=None) -> None:
        self.params = params
        self.cache = None

    def start(self, canvas) -> None:
        self.cache = canvas.new_cache()

    def logits(self, canvas, block_start: int, block_end: int, refresh: bool):
        rows = (block_start, block_end)
        window_start = 0 if refresh else block_start
        return canvas.forward(window_start, canvas.length, cache=self.cache, attend_end=canvas.length,
                              rows=rows), block_start


class DualCache:
    name = "dual"

    def __init__(self, params=None) -> None:
        self.params = params
        self.cache = None

    def start(self, canvas) -> None:
        self.cache = canvas.new_cache()

    def logits(self, canvas, block_start: int, block_end: int, refresh: bool):
        rows = (block_start, block_end)
        if refresh:
            return canvas.forward(0, canvas.length, cache=self.cache, attend_end=canvas.length, rows=rows), block_start
        return canvas.forward(block_start, block_end, cache=self.cache, attend_end=canvas.length), block_start
