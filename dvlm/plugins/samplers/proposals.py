"""Token proposals: from a window of logits to a proposed token and a confidence per position.

Two reference conventions, one function each:

- LLaDA family (LLaDA, LaViDa, LLaDA-V, MMaDA, Fast-dLLM): ``x0 = argmax`` of float64 Gumbel-noised logits
  (exact sampling from ``softmax(logits / T)``), confidence from the *un-noised* softmax;
- Dream: logits divided by T, then top-p / top-k filtered (even at T = 0), ``x0`` drawn from (or the argmax of)
  that softmax, and the confidence taken from the same tempered, filtered probabilities.

Shapes: B batch, W window positions, V vocabulary. Everything is computed on the positions the sampler
passes in (the current block), never on the whole sequence, and in float32 except the Gumbel draw; every
position of the block is computed (static shapes, no host sync), then non-candidates are dropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


PROPOSAL_CHUNK_ROWS = 64
"""Rows proposed at once (64 x 126,464 fp32 = 32 MiB of probabilities)."""


def suppress(logits: torch.Tensor, token_ids: torch.Tensor | None) -> torch.Tensor:
    """Set the logits of ``token_ids`` to -inf (banned tokens), out of place."""
    if token_ids is None or token_ids.numel() == 0:
        return logits
    return logits.index_fill(-1, token_ids, float("-inf"))


def top_k_filter(logits: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Keep the ``top_k`` largest logits (ties at the k-th kept), the rest -> ``finfo.min`` (Dream's rule)."""
    if top_k is None:
        return logits
    kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]  # [..., 1]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def top_p_filter(logits: torch.Tensor, top_p: float | None) -> torch.Tensor:
    """Nucleus filter: keep the smallest prefix of sorted tokens whose mass reaches ``top_p`` (Dream's rule)."""
    if top_p is None or top_p >= 1:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    remove = sorted_logits.softmax(-1).cumsum(-1) > top_p
    remove[..., 1:] = remove[..., :-1].clone()  # shift right: keep the token that crosses top_p
    remove[..., 0] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), torch.finfo(logits.dtype).min)


def gumbel_argmax(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """LLaDA's ``add_gumbel_noise`` + argmax: ``argmax exp(l) / (-log u)^T`` in float64 (low-precision Gumbel
    hurts generation quality, arXiv:2409.02908). Equivalent to sampling from ``softmax(l / T)``."""
    logits = logits.to(torch.float64)
    noise = torch.rand(logits.shape, dtype=torch.float64, generator=generator, device=logits.device)
    return (logits.exp() / (-torch.log(noise)) ** temperature).argmax(-1)


def _on_candidates(logits: torch.Tensor, candidates: torch.Tensor, propose) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``propose(rows [B*W, V]) -> (x0 [B*W], confidence [B*W])`` on every position of the block and keep
    the candidates: ``x0 [B, W]`` (0 elsewhere) and ``confidence [B, W]`` (-inf elsewhere).

    Every row, not only the candidates: the shapes stay static within a block and nothing asks the host which
    positions are candidates (no ``nonzero``), so a step runs without a host sync and compiles. The rows are
    few (one block) and their logits were computed anyway."""
    batch, width, vocab = logits.shape
    rows = logits.reshape(batch * width, vocab)  # [B*W, V]
    # PROPOSAL_CHUNK_ROWS rows at a time: the softmax's [rows, V] copy stays small next to the block's logits
    pieces = [propose(chunk.float()) for chunk in rows.split(PROPOSAL_CHUNK_ROWS)]  # [C, V] -> [C], [C]
    x0, confidence = (torch.cat(parts) for parts in zip(*pieces))  # [B*W], [B*W]
    x0 = torch.where(candidates, x0.view(batch, width), 0)  # [B, W]
    return x0, confidence.view(batch, width).masked_fill(~candidates, float("-inf"))  # [B, W]


def propose_llada(
    logits: torch.Tensor,
    candidates: torch.Tensor,
    *,
    temperature: float,
    top_p: float | None,
    top_k: int | None,
    banned: torch.Tensor | None,
    confidence,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits [B, W, V]``, ``candidates [B, W]`` -> ``(x0 [B, W], confidence [B, W])``, LLaDA convention."""

    def propose(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = suppress(rows, banned)
        if temperature > 0:
            x0 = gumbel_argmax(top_p_filter(top_k_filter(rows, top_k), top_p), temperature, generator)
        else:
            x0 = rows.max(-1).indices  # (max is faster than argmax on CPU)
        probs = rows.softmax(-1) if getattr(confidence, "needs_probs", True) else None
        return x0, confidence(probs, x0, generator).float()

    return _on_candidates(logits, candidates, propose)


def propose_dream(
    logits: torch.Tensor,
    candidates: torch.Tensor,
    *,
    temperature: float,
    top_p: float | None,
    top_k: int | None,
    banned: torch.Tensor | None,
    confidence,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits [B, W, V]``, ``candidates [B, W]`` -> ``(x0 [B, W], confidence [B, W])``, Dream's
    ``sample_tokens`` convention (on the masked positions, as Dream does)."""

    def propose(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = suppress(rows, banned)
        if temperature > 0:
            rows = rows / temperature
        probs = F.softmax(top_k_filter(top_p_filter(rows, top_p), top_k), dim=-1)  # [M, V]
        if temperature > 0:  # Dream: Categorical(probs).sample()
            x0 = torch.multinomial(probs, 1, replacement=True, generator=generator).squeeze(-1)
        else:
            x0 = probs.max(-1).indices
        return x0, confidence(probs, x0, generator).float()

    return _on_candidates(logits, candidates, propose)
