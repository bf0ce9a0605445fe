"""The arguments of a backbone forward, checked once and resolved for every layer.

A forward runs over a *window* of T tokens. Without a cache the window is the whole input and
attends to itself. With a cache (``dvlm.core.kv_cache.KVCache``) the window occupies absolute
positions ``[cache_start, cache_start + T)``, writes its keys/values there, and attends to
``[0, attend_end)``. The contract is the ``Backbone`` Protocol in ``dvlm/core/interfaces.py``.

Shapes: B batch, T window tokens, S attended keys, D model width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dvlm.core.attention import sdpa_mask
from dvlm.core.kv_cache import KVCache
from dvlm.core.rope import padded_positions


def default_positions(attention_mask: torch.Tensor | None, batch: int, start: int, length: int,
                      device: torch.device) -> torch.Tensor:
    """``[B, T]`` positions of the window ``[start, start + T)``: counted over real tokens only when a
    key-padding mask ``[B, S]`` is given (a left-padded row gets the positions of its batch-1 run, as
    Dream's reference derives them), else ``start + arange(T)``."""
    if attention_mask is not None and attention_mask.dim() == 2:
        return padded_positions(attention_mask)[:, start : start + length].to(device)
    return torch.arange(start, start + length, device=device).expand(batch, length)


def embed_inputs(embedding: nn.Embedding, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
    """Exactly one of ``input_ids [B, T]`` or ``inputs_embeds [B, T, D]`` -> ``[B, T, D]``."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids [B, T] or inputs_embeds [B, T, D]")
    if inputs_embeds is not None:
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != embedding.embedding_dim:
            raise ValueError(
                f"inputs_embeds must be [B, T, {embedding.embedding_dim}], got {tuple(inputs_embeds.shape)}"
            )
        return inputs_embeds.to(embedding.weight.dtype)
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [B, T], got {tuple(input_ids.shape)}")
    return embedding(input_ids)


@dataclass
class Window:
    """A resolved forward window: positions, attention mask and cache slot shared by all layers."""

    position_ids: torch.Tensor
    """``[B, T]`` RoPE positions."""
    mask: torch.Tensor | None
    """Bool ``[B, 1, T|1, S]`` for ``dvlm.core.attention.attend``, or None (attend everywhere)."""
    cache: KVCache | None
    start: int
    """Absolute position of the window's first token (the cache slot it writes)."""
    attend_end: int
    """Keys ``[0, attend_end)`` are attended (``T`` without a cache)."""

    @classmethod
    def resolve(
        cls,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        cache: KVCache | None,
        cache_start: int,
        attend_end: int | None,
    ) -> "Window":
        batch, length = x.shape[:2]
        if cache is None:
            if attend_end not in (None, length):
                raise ValueError("attend_end needs a cache: without one a window attends to itself only")
            attend_end = length
        else:
            attend_end = cache_start + length if attend_end is None else attend_end
            cache.check_window(batch, cache_start, length, attend_end)
        mask = sdpa_mask(attention_mask, length, attend_end)  # checks the mask covers the window
        if position_ids is None:
            position_ids = default_positions(attention_mask, batch, cache_start, length, x.device)
        elif position_ids.shape != (batch, length):
            raise ValueError(f"position_ids must be [B, T] = {(batch, length)}, got {tuple(position_ids.shape)}")
        return cls(position_ids, mask, cache, cache_start, attend_end)
