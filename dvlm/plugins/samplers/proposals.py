"""Token proposals: from a window of logits to a proposed token and a confidence per position.

Two reference conventions, one function each:

- LLaDA family (LLaDA, LaViDa, LLaDA-V, MMaDA, Fast-dLLM): ``x0 = argmax`` of float64 Gumbel-noised logits
  (exact sampling from ``softmax(logits / T)``), confidence from the *un-noised* softmax;
- Dream: logits divided by T, then top-p / top-k filtered (even at T = 0), ``x0`` drawn from (or the argmax of)
  that softmax, and the confidence taken from the same tempered, filtered probabilities.

Shapes: B batch, W window positions, V vocabulary. Everything is computed on the positions the sampler
passes in (the current block), never on the whole sequence, and in float32 except the Gumbel draw. On an
accelerator and under ``torch.compile`` every position of the block is computed (static shapes, no host sync),
then non-candidates are dropped; on the CPU in eager mode a deterministic proposal runs on the candidates only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


CPU_CHUNK_BYTES = 4 * 2**20
"""On the CPU, the float32 logits of one proposal chunk fit this: the argmax's first pass brings a chunk into
cache and the softmax reads it there. Time outside the forwards of a LaViDa-shaped answer (V = 126,464, 2 threads,
torch profiler): 43 ms at 2 MiB, 35 ms at 4 MiB, 46 ms at 8 MiB, 60 ms in one 32-row pass."""
DEVICE_CHUNK_ROWS = 64
"""Elsewhere, rows proposed at once (64 x 126,464 fp32 = 32 MiB of probabilities): few, large kernels."""


def proposal_chunk_rows(vocab: int, device: torch.device) -> int:
    """How many rows ``_on_candidates`` proposes at once (each row's result is the same for any chunking)."""
    if device.type == "cpu":
        return max(1, CPU_CHUNK_BYTES // (vocab * 4))
    return DEVICE_CHUNK_ROWS


ARGMAX_GROUP = 64
"""Width of the groups ``first_argmax`` reduces first (a multiple of every CPU vector width; LLaDA's, Dream's,
Llama-3's and Qwen2's vocabularies are multiples of it)."""


def first_argmax(rows: torch.Tensor) -> torch.Tensor:
    """``rows [R, V]`` -> ``[R]``, the index of each row's first maximum: ``argmax``'s result, faster on the CPU.
    ATen's CPU max-with-index is a scalar loop (1.2 ms for 32 x 126,464 floats, against 0.35 ms here): the max of
    each 64-wide group (vectorised), then the first group holding the row's max, then the first index in it."""
    count, vocab = rows.shape
    if rows.device.type != "cpu" or vocab % ARGMAX_GROUP:  # a GPU's argmax is one fast kernel
        return rows.argmax(-1)
    groups = rows.reshape(count, vocab // ARGMAX_GROUP, ARGMAX_GROUP)  # [R, V / 64, 64]
    group = groups.amax(-1).max(-1, keepdim=True).indices  # [R, 1]: the first group holding the row's max
    members = groups.gather(1, group[:, :, None].expand(count, 1, ARGMAX_GROUP))[:, 0]  # [R, 64]
    return group[:, 0] * ARGMAX_GROUP + members.max(-1).indices  # the first maximum inside that group


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
    return first_argmax(logits.exp() / (-torch.log(noise)) ** temperature)


def candidates_on_host(candidates: torch.Tensor) -> bool:
    """True when reading ``candidates`` syncs no device: CPU tensors in eager mode (not under ``torch.compile``)."""
    return candidates.device.type == "cpu" and not torch.compiler.is_compiling()


def is_deterministic(confidence) -> bool:
    """Whether a confidence measure declares it draws nothing (``deterministic = True``; a third party's measure
    that does not say so is treated as random: proposed on every row, its random stream independent of where the
    candidates are)."""
    return getattr(confidence, "deterministic", False) is True


def _on_candidates(logits: torch.Tensor, candidates: torch.Tensor, propose,
                   deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``propose(rows [R, V]) -> (x0 [R], confidence [R])`` on the block's rows and keep the candidates:
    ``x0 [B, W]`` (0 elsewhere) and ``confidence [B, W]`` (-inf elsewhere; NaN at a candidate whose logits hold
    a NaN, which the loop flags: ``Canvas.nan_logits``).

    On an accelerator, and under ``torch.compile``, every row of the block: the shapes stay static within a block
    and nothing asks the host which positions are candidates (no ``nonzero``, no sync), so a step compiles. On the
    CPU in eager mode the host holds the candidates already (reading them syncs nothing), so a ``deterministic``
    proposal (each row's result independent of the others and of any random stream) runs on the candidate rows
    only: a block's candidates shrink step by step (a LaViDa caption: 12 of 32 rows on average)."""
    batch, width, vocab = logits.shape
    rows = logits.reshape(batch * width, vocab)  # [B*W, V]
    flat = candidates.reshape(batch * width)  # [B*W]
    # a few rows at a time: the softmax's [rows, V] copy stays small (in cache on the CPU), and the NaN check
    # (a row's sum, after the proposal) reads the chunk from cache
    chunk_rows = proposal_chunk_rows(vocab, logits.device)
    index = None
    if deterministic and candidates_on_host(candidates):
        index = flat.nonzero().squeeze(-1)  # [n] (a CPU read: no device sync)
        if len(index) == len(flat):  # every row is a candidate: no copy
            index = None
    if index is None:
        chunks = rows.split(chunk_rows)
    else:
        chunks = (rows.index_select(0, part) for part in index.split(chunk_rows))  # copied a chunk at a time
    pieces = [(*propose(chunk.float()), chunk.sum(-1)) for chunk in chunks]  # [C], [C], [C]
    x0, confidence, sums = (torch.cat(parts) for parts in zip(*pieces))  # [R], [R], [R]
    confidence = confidence.masked_fill(sums.isnan(), float("nan"))  # a NaN logit: NaN confidence, flagged
    if index is not None:  # back to every row of the block
        x0 = x0.new_zeros(batch * width).index_copy_(0, index, x0)  # [B*W]
        confidence = confidence.new_zeros(batch * width).index_copy_(0, index, confidence)  # [B*W]
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
            x0 = first_argmax(rows)
        probs = rows.softmax(-1) if getattr(confidence, "needs_probs", True) else None
        return x0, confidence(probs, x0, generator).float()

    return _on_candidates(logits, candidates, propose, temperature == 0 and is_deterministic(confidence))


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
            x0 = first_argmax(probs)
        return x0, confidence(probs, x0, generator).float()

    return _on_candidates(logits, candidates, propose, temperature == 0 and is_deterministic(confidence))
