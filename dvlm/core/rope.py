"""Rotary position embeddings (RoPE), rotate-half convention, from explicit positions.

Both LLaDA (OLMo code) and Dream/LLaDA-V (HF Llama/Qwen2 code) use the same half-split
rotation, so checkpoints need no q/k permutation. They differ only in rounding:

- OLMo (``full_precision=True``): q and k are upcast to fp32, rotated with fp32 cos/sin, cast back;
- HF Llama/Qwen2 (``full_precision=False``): cos/sin are cast to the activation dtype and the
  rotation runs in that dtype.

In fp32 the two are identical. cos/sin are computed per forward from ``position_ids`` (no table
buffer), so positions may be arbitrary: left-padded rows, cached windows, refreshed blocks.

Shapes: B batch, T tokens, H heads, Dh head width.
"""

from __future__ import annotations

import torch


def padded_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """RoPE positions for a left-padded batch: ``cumsum(mask) - 1`` (pads get 0).

    ``attention_mask [B, T]`` (1 = real token) -> ``[B, T]`` int64. With these positions every row
    of a padded batch gets the positions of its unpadded batch-1 run (Dream's reference convention;
    the LLaDA reference keeps absolute ``0..T-1``, the same answer in exact arithmetic since RoPE is
    relative, but not in bf16).
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def rope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 ``cos, sin`` of shape ``[B, 1, T, Dh]`` for ``position_ids [B, T]``.

    ``inv_freq = theta^(-2i/Dh)``; the angle table is ``cat(freqs, freqs)`` (rotate-half layout).
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float) / head_dim))
    freqs = position_ids.float()[:, :, None] * inv_freq[None, None, :]  # [B, T, Dh/2]
    angles = torch.cat((freqs, freqs), dim=-1)[:, None]  # [B, 1, T, Dh]
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` over the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, full_precision: bool) -> torch.Tensor:
    """Rotate ``x [B, H, T, Dh]`` by fp32 ``cos/sin [B, 1, T, Dh]``; returns ``x``'s dtype."""
    if full_precision:
        xf = x.float()
        return (xf * cos + rotate_half(xf) * sin).to(x.dtype)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin
