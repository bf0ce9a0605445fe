"""Selective K/V refresh: recompute some rows of the canvas against a cache that keeps the others.

The approximate caches of dKV-Cache and Elastic-Cache recompute scattered rows per step (the masked positions,
the tokens decoded one step ago), not a contiguous window. ``RowKVCache`` wraps the backbone's own preallocated
``KVCache`` and, while ``slots [B, R]`` is set, writes a forward's keys/values at those absolute positions
(``scatter_``, no allocation) and serves every position ``[0, attend_end)``; otherwise it behaves as the
wrapped cache (contiguous windows, e.g. a full refresh through ``Canvas.forward``). ``forward_rows`` runs the
backbone on such rows with their own RoPE positions, and counts the forward and the rows it recomputed.

While ``track_drift`` is set, the last layer also records the cosine similarity between each recomputed row's
new key and the key it replaces (``drift [B, R]``, averaged over heads): how far its cached K/V had drifted.

Shapes: B batch, R recomputed rows, N canvas length, Hkv key-value heads, Dh head width, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dvlm.core.errors import SamplerError


class RowKVCache:
    def __init__(self, cache) -> None:
        self.cache = cache  # dvlm.core.kv_cache.KVCache
        self.slots: torch.Tensor | None = None
        self.track_drift = False
        self.drift: torch.Tensor | None = None

    @property
    def written_end(self) -> int:
        return self.cache.written_end

    def check_window(self, batch_size: int, start: int, length: int, attend_end: int) -> None:
        if self.slots is None:
            self.cache.check_window(batch_size, start, length, attend_end)
        elif attend_end > self.cache.written_end:
            raise ValueError(f"rows attend to [0, {attend_end}) but only [0, {self.cache.written_end}) is written")

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int, attend_end: int):
        """``k/v [B, Hkv, R, Dh]`` -> the layer's keys/values ``[B, Hkv, attend_end, Dh]``."""
        if self.slots is None:
            return self.cache.update(layer, k, v, start, attend_end)
        keys, values = self.cache.keys[layer], self.cache.values[layer]  # [B, Hkv, S_max, Dh]
        index = self.slots[:, None, :, None].expand_as(k)  # [B, Hkv, R, Dh]
        if self.track_drift and layer == self.cache.num_layers - 1:
            old = keys.gather(2, index)
            self.drift = F.cosine_similarity(old.float(), k.float(), dim=-1).mean(1)  # [B, R]
        keys.scatter_(2, index, k)
        values.scatter_(2, index, v)
        return keys[:, :, :attend_end], values[:, :, :attend_end]

    def write_hidden(self, hidden: torch.Tensor, start: int) -> None:
        self.cache.write_hidden(hidden, start)

    def hidden_before(self, start: int) -> torch.Tensor:
        return self.cache.hidden_before(start)


def check_supported(canvas, kind: str) -> None:
    """Rows are recomputed from token ids with unshifted logits: refuse what would need more."""
    if getattr(canvas.backbone, "logits_shifted", False):
        raise SamplerError(f"cache '{kind}' recomputes scattered rows, which a shifted-logits backbone (Dream) "
                           "cannot serve (row i's logits come from row i - 1); use cache: prefix, dual or none")
    if canvas.cfg_scale > 0:
        raise SamplerError(f"cache '{kind}' does not run classifier-free guidance; set cfg_scale: 0 or use "
                           "cache: none or prefix")


def stale_rows(canvas, stale: torch.Tensor) -> torch.Tensor:
    """``stale [B, N]`` bool (answer positions only) -> ``rows [B, R]``, R = the most stale rows of any batch
    row (one host sync); a row with fewer stale positions fills up with other answer positions, which are
    recomputed too (more exact, and counted)."""
    in_answer = torch.zeros_like(stale)
    in_answer[:, canvas.prompt_length :] = True
    width = int(stale.sum(-1).max())
    priority = stale.to(torch.int8) * 2 + in_answer.to(torch.int8)  # stale answer rows, then other answer rows
    return priority.argsort(dim=-1, descending=True, stable=True)[:, :max(width, 1)]  # [B, R]


def forward_rows(canvas, cache: RowKVCache, rows: torch.Tensor) -> torch.Tensor:
    """Logits ``[B, R, V]`` of the answer ``rows [B, R]``, each attending to every cached position."""
    ids = canvas.x.gather(1, rows)  # [B, R]
    positions = (torch.arange(canvas.length, device=canvas.device).expand(canvas.batch_size, -1)
                 if canvas.positions is None else canvas.positions).gather(1, rows)  # [B, R]
    cache.slots = rows
    try:
        logits = canvas.backbone(ids, attention_mask=canvas.key_padding, position_ids=positions, cache=cache,
                                 cache_start=0, attend_end=canvas.length)
    finally:
        cache.slots = None
    canvas.nfe += 1
    canvas.kv_rows_recomputed += rows.numel()
    return logits


def block_logits(logits: torch.Tensor, rows: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """Scatter the rows' ``logits [B, R, V]`` into the block ``[start, end)``: ``[B, end - start, V]`` (zeros at
    block positions not recomputed: committed ones, which no proposal reads)."""
    width = end - start
    inside = (rows >= start) & (rows < end)
    index = torch.where(inside, rows - start, width)  # rows outside land in a spare slot
    out = logits.new_zeros(logits.shape[0], width + 1, logits.shape[-1])
    out.scatter_(1, index[..., None].expand_as(logits), logits)
    return out[:, :width]
