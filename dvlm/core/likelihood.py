"""Conditional likelihood of an answer under a masked-diffusion model: LLaDA's Monte-Carlo estimate.

``dvlm.score(model, prompt, choices, images=...)`` returns, for each choice, an estimate of the evidence
lower bound of ``log p(choice | prompt)`` (ML-GSAI/LLaDA ``get_log_likelihood.py``, backbones.md §2.8):

- the sequence is ``[prompt; answer]`` (then the chat template's end of turn, visible, see ``close_turn``),
  repeated ``batch_size`` times; only answer positions are ever masked;
- per batch, *stratified* masked counts: ``k ~ U{1..A}``, ``n = round(linspace(k, k + (b-1)·A/b, b))``,
  ``n = ((n - 1) mod A) + 1`` (A answer tokens, b rows), so one batch covers the count range evenly;
- row i masks ``n_i`` answer positions drawn uniformly (``randperm``), and its loss is the cross-entropy
  summed over the masked positions, weighted by ``1 / p_i`` with ``p_i = n_i / A``;
- the estimate is minus the mean row loss over ``mc_num / batch_size`` batches.

Because ``n`` is uniform on ``{1..A}`` and the weight is ``A / n``, this is an unbiased estimate of the
masked-diffusion ELBO ``-Σ_t (1/t) E[CE on masked]``. Every choice is scored with the same seed, so
choices of one length see the same masks (common random numbers: their differences have less variance).

Only the masked answer rows reach the LM head, in chunks (``dvlm.core.head_loss``): no ``[b, P + A, V]``
logits, which for one LaViDa prompt (b = 16, P ~ 1,050, V = 126,464) were ~4.3 GB in bf16.

Departures from LLaDA's code: one CPU ``torch.Generator`` draws every count and mask (LLaDA draws counts on
the device generator and masks on the global CPU one), so a seed gives the same value on every device.

Shapes: b rows per batch (Monte-Carlo samples), P prompt length, A answer length, E end-of-turn length,
V vocabulary, D width.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from dvlm.core.errors import EvalError
from dvlm.core.generation import backbone_of, tokenizer_of
from dvlm.core.head_loss import chunk_rows_for, gathered_cross_entropy
from dvlm.core.input_checks import check_ids, context_length


def stratified_counts(answer_length: int, rows: int, start: int) -> torch.Tensor:
    """``[rows]`` int64 masked counts in ``1..answer_length``, evenly spread from ``start`` (LLaDA).

    ``torch.round`` rounds half to even, as LLaDA's does: A=10, b=4, start 3 gives ``[3, 6, 8, 10]``."""
    counts = torch.linspace(start, start + (rows - 1) * answer_length / rows, rows).round().long()
    return (counts - 1) % answer_length + 1


def random_masks(counts: torch.Tensor, answer_length: int, generator: torch.Generator) -> torch.Tensor:
    """``[b, A]`` bool: row i has exactly ``counts[i]`` masked positions, chosen uniformly."""
    masked = torch.zeros(len(counts), answer_length, dtype=torch.bool)
    for row, count in enumerate(counts.tolist()):
        masked[row, torch.randperm(answer_length, generator=generator)[:count]] = True
    return masked


@torch.no_grad()
def answer_elbo(backbone: Any, prefix: torch.Tensor, answer: torch.Tensor, *, suffix: torch.Tensor | None = None,
                mc_num: int = 128, batch_size: int = 16, seed: int = 0) -> float:
    """The Monte-Carlo ELBO of ``answer`` ``[A]`` (ids) after ``prefix`` ``[P, D]`` (prompt embeddings), with
    ``suffix`` ``[E, D]`` (visible embeddings after the answer, never masked) when given."""
    length = int(answer.numel())
    mask_id = backbone.special_tokens.mask_id
    generator = torch.Generator().manual_seed(seed)
    device = prefix.device
    total = 0.0
    for _ in range(mc_num // batch_size):
        start = int(torch.randint(1, length + 1, (1,), generator=generator))
        counts = stratified_counts(length, batch_size, start)  # [b]
        masked = random_masks(counts, length, generator).to(device)  # [b, A]
        noised = torch.where(masked, torch.full_like(masked, mask_id, dtype=torch.long), answer[None].to(device))
        pieces = [prefix[None].expand(batch_size, -1, -1), backbone.embed(noised)]  # [b, P, D], [b, A, D]
        if suffix is not None:
            pieces.append(suffix[None].expand(batch_size, -1, -1))  # [b, E, D]
        hidden = backbone.hidden_states(inputs_embeds=torch.cat(pieces, dim=1))  # [b, P + A (+ E), D]
        first = prefix.shape[0]
        picked = hidden[:, first : first + length][masked]  # [M, D]: the head runs on masked rows only
        targets = answer.to(device)[None].expand(batch_size, -1)[masked]  # [M]
        ce = gathered_cross_entropy(backbone.head, picked, targets, chunk_rows_for(backbone.vocab_size))  # [M]
        row_loss = torch.zeros(masked.shape, device=device).masked_scatter_(masked, ce).sum(-1)  # [b]
        weight = length / counts.to(device=device, dtype=torch.float32)  # 1 / p_mask, [b]
        total += float((row_loss * weight).mean())
    return -total / (mc_num // batch_size)


def _ids(tokenizer: Any, text: str | Sequence[int], what: str) -> list[int]:
    if not isinstance(text, str):
        return [int(t) for t in text]
    if tokenizer is None:
        raise EvalError(f"{what} is text but the model has no tokenizer; pass token ids or tokenizer=")
    from dvlm.core.tokenizer import encode

    return encode(tokenizer, text)


def score(model: Any, prompt: Any, choices: Sequence[str | Sequence[int]], images: Sequence[Any] | None = None, *,
          mc_num: int = 128, batch_size: int = 16, seed: int = 0, close_turn: bool = True,
          tokenizer: Any = None) -> list[float]:
    """Estimated ``log p(choice | prompt, images)`` for each choice (higher is more likely).

    ``model``: a ``DiffusionVLM`` (``dvlm.build`` / ``dvlm.load_pretrained``) or a bare backbone.
    ``prompt``: text or a message list (rendered with the model's chat template, ``<image>`` placeholders
    as in ``dvlm.generate``), or a list of token ids used as is. ``choices``: strings or token-id lists.
    ``mc_num``: Monte-Carlo samples per choice (LLaDA: 128; 1 suffices for one-token answers), in batches
    of ``batch_size`` (must divide it). ``close_turn``: put the chat template's end of turn after the
    answer as visible context (a chat model was trained on answers followed by it); only the choice is
    scored. Deterministic for a given ``seed``.
    """
    if mc_num < 1 or batch_size < 1 or mc_num % min(batch_size, mc_num):
        raise EvalError(f"mc_num={mc_num} must be a positive multiple of batch_size={batch_size} (each batch "
                        f"stratifies its masked counts); e.g. mc_num=128, batch_size=16")
    batch_size = min(batch_size, mc_num)
    backbone = backbone_of(model)
    tokenizer = tokenizer if tokenizer is not None else tokenizer_of(model)
    answers = [_ids(tokenizer, choice, f"choice {i}") for i, choice in enumerate(choices)]
    if not answers:
        raise EvalError("choices= is empty; pass at least one answer to score (text or token ids)")
    empty = [i for i, ids in enumerate(answers) if not ids]
    if empty:
        raise EvalError(f"choice(s) {empty} encode to no tokens; every choice needs at least one token")
    for i, ids in enumerate(answers):
        check_ids(torch.tensor(ids), backbone.vocab_size, f"choice {i}")
    template = getattr(model, "chat_template", None)
    end = template.end_of_turn if close_turn and template is not None else ""
    suffix_ids = _ids(tokenizer, end, "the end of turn") if end else []
    longest = max(map(len, answers)) + len(suffix_ids)
    with torch.no_grad():
        if not _is_ids(prompt):
            if not hasattr(model, "prompt_batch"):
                raise EvalError("text prompts need a model with a chat template and tokenizer (a DiffusionVLM); "
                                "pass the prompt as token ids for a bare backbone")
            batch = model.prompt_batch(prompt, images, gen_length=longest)  # one row, no padding
            prefix = batch.inputs_embeds[0]  # [P, D]
        else:
            if images:
                raise EvalError("images= needs a text prompt (the images go where its <image> placeholders are)")
            device = next(backbone.parameters()).device
            ids = torch.as_tensor(prompt, dtype=torch.long, device=device).reshape(1, -1)  # [1, P]
            check_ids(ids, backbone.vocab_size, "the prompt")
            prefix = backbone.embed(ids)[0]  # [P, D]
        context = context_length(backbone)
        if context is not None and prefix.shape[0] + longest > context:
            raise EvalError(f"the prompt ({prefix.shape[0]} tokens) plus the longest choice and end of turn "
                            f"({longest}) exceed the backbone's context of {context}; shorten the prompt")
        suffix = None
        if suffix_ids:
            suffix = backbone.embed(torch.tensor([suffix_ids], dtype=torch.long, device=prefix.device))[0]  # [E, D]
        return [answer_elbo(backbone, prefix, torch.tensor(ids, dtype=torch.long, device=prefix.device),
                            suffix=suffix, mc_num=mc_num, batch_size=batch_size, seed=seed) for ids in answers]


def _is_ids(prompt: Any) -> bool:
    return isinstance(prompt, torch.Tensor) or (isinstance(prompt, Sequence) and all(isinstance(t, int) for t in prompt)
                                                and len(prompt) > 0)
