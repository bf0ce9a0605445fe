"""Bidirectional multi-head attention with an explicit mask, GQA, and the masks dvlm uses.

Attention is never implicitly causal: a backbone attends everywhere unless a mask says otherwise.
Two mask forms are accepted (``True``/1 = may attend):

- a key-padding mask ``[B, S]`` (1 = real token): padded keys are hidden from every query;
  padded query rows are still computed (their outputs are ignored by callers);
- a full boolean mask ``[B, 1, T, S]`` (e.g. :func:`prefix_lm_mask` for training).

flash-attn (the ``gpu`` extra) is used for unmasked fp16/bf16 CUDA attention when it is importable;
everything else goes through ``F.scaled_dot_product_attention``. On the CPU a key-padding mask (a ragged
batch) runs row by row on each row's real keys, so a padded row gets its batch-1 result bit for bit (see
``_row_by_row``); on CUDA it stays one masked kernel (batch-invariant up to the kernel's rounding).

Shapes: B batch, T query tokens, S key tokens, H / Hkv query / key-value heads, Dh head width.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache

import torch
import torch.nn.functional as F


@lru_cache(maxsize=1)
def _flash_attn_func():
    """flash-attn's ``flash_attn_func`` when installed, else None (checked once)."""
    if importlib.util.find_spec("flash_attn") is None:
        return None
    from flash_attn import flash_attn_func

    return flash_attn_func


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``q [B, H, T, Dh]``, ``k/v [B, Hkv, S, Dh]``, ``mask [B, 1, T|1, S]`` bool or None -> ``[B, H, T, Dh]``.

    Scale ``1/sqrt(Dh)``, no dropout. Query head ``h`` uses key-value head ``h // (H / Hkv)`` (the
    grouping of ``repeat_interleave`` / HF ``repeat_kv``).
    """
    if mask is not None and mask.shape[2] == 1 and not q.is_cuda:  # a key-padding mask, on the CPU
        return _row_by_row(q, k, v, mask[:, 0, 0])
    flash = _flash_attn_func() if q.is_cuda else None
    if flash is not None and mask is None and q.dtype in (torch.float16, torch.bfloat16):
        # flash-attn wants [B, T, H, Dh] with a unit-stride last dim: transposes are views
        out = flash(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=False)  # [B, T, H, Dh]
        return out.transpose(1, 2)  # [B, H, T, Dh]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False, enable_gqa=k.shape[1] != q.shape[1])


def _row_by_row(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Attention of a padded batch, each row on its real keys only (``real [B, S]`` bool), without a mask.

    Why: the CPU kernel sums over keys in vector lanes and blocks; padded keys shift a row's keys within
    them, so in bf16 a padded row would differ from its own batch-1 run (measured: 5/5 random calls differ
    with 3 pad keys, and past ~180 keys even with 16). Run on exactly its real keys, a row computes what its
    batch-1 run computes, bit for bit: ragged batches are batch-invariant. Queries need no such care (padding
    them changes nothing); pad query rows attend to the real keys, as under the mask.
    """
    rows = []
    for b in range(q.shape[0]):
        keys = real[b].nonzero().flatten()  # [S_b]
        rows.append(F.scaled_dot_product_attention(
            q[b : b + 1], k[b : b + 1, :, keys], v[b : b + 1, :, keys], is_causal=False,
            enable_gqa=k.shape[1] != q.shape[1]))  # [1, H, T, Dh]
    return torch.cat(rows)  # [B, H, T, Dh]


def sdpa_mask(attention_mask: torch.Tensor | None, num_queries: int, num_keys: int) -> torch.Tensor | None:
    """Normalise a user mask to what :func:`attend` takes: bool ``[B, 1, T|1, S]`` or None.

    ``attention_mask`` is a key-padding mask ``[B, S']`` or a full mask ``[B, 1, T, S']`` with
    ``S' >= num_keys`` (keys beyond ``num_keys`` are cut off, so a caller can pass one mask for the
    whole sequence to every cached window). A key-padding mask without padding returns None, which
    keeps the fast unmasked kernels (checked on the CPU only: on a GPU that check would be a host sync per
    forward, so a CUDA key-padding mask is always applied).
    """
    if attention_mask is None:
        return None
    if attention_mask.dim() == 2:
        if attention_mask.shape[1] < num_keys:
            raise ValueError(
                f"attention_mask covers {attention_mask.shape[1]} keys but the window attends to {num_keys}; "
                "pass a key-padding mask [B, S] with S >= the attended length"
            )
        keys = attention_mask[:, :num_keys].bool()
        if keys.is_cuda:  # no host sync on a GPU: the mask is used as given (dvlm's samplers pass None unpadded)
            return keys[:, None, None, :]  # [B, 1, 1, S]
        return None if bool(keys.all()) else keys[:, None, None, :]  # [B, 1, 1, S]
    if attention_mask.dim() == 4:
        if attention_mask.shape[2] != num_queries or attention_mask.shape[3] < num_keys:
            raise ValueError(
                f"a 4-D attention_mask must be [B, 1, {num_queries}, >= {num_keys}], got {tuple(attention_mask.shape)}"
            )
        if attention_mask.dtype != torch.bool:
            raise ValueError(f"a 4-D attention_mask must be boolean (True = may attend), got {attention_mask.dtype}")
        return attention_mask[..., :num_keys]
    raise ValueError(f"attention_mask must be [B, S] or [B, 1, T, S], got shape {tuple(attention_mask.shape)}")


def prefix_lm_mask(prefix_lengths: torch.Tensor, length: int, key_padding: torch.Tensor | None = None) -> torch.Tensor:
    """The Prefix-DLM training mask: prefix queries see only the prefix; answer queries see all.

    ``prefix_lengths [B]`` (per-row prompt length P) -> bool ``[B, 1, T, T]`` with
    ``allowed[q, k] = k < P or q >= P``, optionally intersected with a key-padding mask ``[B, T]``.
    A cached inference run (prefix written once, answer window attending to prefix + itself)
    computes exactly this mask.
    """
    pos = torch.arange(length, device=prefix_lengths.device)
    p = prefix_lengths.to(pos.device)[:, None, None]  # [B, 1, 1]
    allowed = (pos[None, None, :] < p) | (pos[None, :, None] >= p)  # [B, T, T]
    if key_padding is not None:
        allowed = allowed & key_padding.bool()[:, None, :]
    return allowed[:, None]  # [B, 1, T, T]
