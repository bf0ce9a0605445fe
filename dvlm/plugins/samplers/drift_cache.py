"""A similarity-driven selective refresh, after Elastic-Cache (Nguyen-Tri et al., "Attention Is All You Need
for KV Cache in Diffusion LLMs", arXiv:2510.14973).

Elastic-Cache keeps the cache until an attention-aware drift test says it went stale: it watches how much a
sentinel (the most-attended token) changed since it was cached, and refreshes when the cosine similarity falls
below gamma. Here the sentinels are the positions every step recomputes anyway: each step recomputes the masked
positions and the tokens decoded since their K/V were cached (as ``dkv``), and the last layer measures the cosine
similarity between the masked rows' new keys and the keys they replace. When the lowest similarity falls below
``similarity``, the cached rest (prompt and decoded tokens) is deemed stale and the next step refreshes every
position with a full forward; a full forward also opens each block. Departures, for a backbone-agnostic policy:
the drift is measured on keys rather than attention weights, and a refresh recomputes all layers (Elastic-Cache
recomputes from the shallowest drifting layer on). ``kv_rows_recomputed`` counts the rows each step ran.

Host syncs: one per selective step (the number of rows to run, and the drift test).
"""

from __future__ import annotations

from dvlm.plugins.samplers.row_cache import (RowKVCache, block_logits, check_supported, forward_rows,
                                             stale_rows)


class DriftRefreshCache:
    name = "drift_refresh"

    def __init__(self, params) -> None:
        self.similarity = params.similarity
        self.cache = None

    def start(self, canvas) -> None:
        check_supported(canvas, self.name)
        self.cache = RowKVCache(canvas.new_cache())
        self.cached_tokens = None  # [B, N]: the token each position's cached K/V were computed with
        self.drifted = True

    def logits(self, canvas, block_start: int, block_end: int, refresh: bool):
        if self.drifted or refresh:
            self.drifted = False
            self.cached_tokens = canvas.x.clone()
            return canvas.forward(0, canvas.length, cache=self.cache, attend_end=canvas.length,
                                  rows=(block_start, block_end)), block_start
        masked = canvas.x == canvas.tokens.mask_id  # [B, N]
        stale = (canvas.x != self.cached_tokens) | masked
        stale[:, : canvas.prompt_length] = False
        rows = stale_rows(canvas, stale)  # [B, R]
        self.cache.track_drift = True
        try:
            logits = forward_rows(canvas, self.cache, rows)
        finally:
            self.cache.track_drift = False
        sentinel = masked.gather(1, rows) & (self.cached_tokens.gather(1, rows) == canvas.tokens.mask_id)  # [B, R]
        self.drifted = bool((sentinel & (self.cache.drift < self.similarity)).any())
        self.cached_tokens.scatter_(1, rows, canvas.x.gather(1, rows))
        return block_logits(logits, rows, block_start, block_end), block_start
