"""dKV-Cache's delayed cache (Ma et al., "dKV-Cache: The Cache for Diffusion Language Models",
arXiv:2505.15781; the ``dKV-Cache-Decode`` variant).

Rule: a token's keys/values are cached one step *after* it is decoded (at the step it is decoded its
representation still changes markedly), then reused; masked positions are recomputed at every step, and the
whole cache is refreshed every ``refresh_interval`` steps. Here: a full forward at the first step (and every
``refresh_interval`` steps) writes every position; the other steps recompute exactly the positions whose token
differs from the one their cached K/V were computed with (the masks, and the tokens committed at the previous
step) against the cached rest, prompt included (approximate: the prompt's and decoded tokens' K/V go stale as
the answer fills). ``kv_rows_recomputed`` counts the rows each step ran.

Host syncs: one per selective step (the number of rows to run).
"""

from __future__ import annotations

from dvlm.plugins.samplers.row_cache import (RowKVCache, block_logits, check_supported, forward_rows,
                                             stale_rows)


class DelayedCache:
    name = "dkv"

    def __init__(self, params) -> None:
        self.refresh_interval = params.refresh_interval
        self.cache = None

    def start(self, canvas) -> None:
        check_supported(canvas, self.name)
        self.cache = RowKVCache(canvas.new_cache())
        self.cached_tokens = None  # [B, N]: the token each position's cached K/V were computed with
        self.step = 0

    def logits(self, canvas, block_start: int, block_end: int, refresh: bool):
        self.step += 1
        periodic = self.refresh_interval is not None and (self.step - 1) % self.refresh_interval == 0
        if self.cached_tokens is None or periodic:
            self.cached_tokens = canvas.x.clone()
            return canvas.forward(0, canvas.length, cache=self.cache, attend_end=canvas.length,
                                  rows=(block_start, block_end)), block_start
        stale = (canvas.x != self.cached_tokens) | (canvas.x == canvas.tokens.mask_id)  # [B, N]
        stale[:, : canvas.prompt_length] = False
        rows = stale_rows(canvas, stale)  # [B, R]
        logits = forward_rows(canvas, self.cache, rows)
        self.cached_tokens.scatter_(1, rows, canvas.x.gather(1, rows))
        return block_logits(logits, rows, block_start, block_end), block_start
