"""Checks on what a caller hands to a sampler, before anything runs: one clear ``DvlmError`` each.

A wrong id would surface as a raw ``IndexError`` deep inside the embedding, an empty batch as a
``ZeroDivisionError``, and a prompt longer than the context would run silently on positions the model
never saw. Each check costs one host sync per generation, never one per step.

Shapes: B batch, P prompt length, L draft length.
"""

from __future__ import annotations

from typing import Any

import torch

from dvlm.core.errors import PromptError, SamplerError


def context_length(backbone: Any) -> int | None:
    """The context the backbone's checkpoint declares (LLaDA ``max_sequence_length``, Dream
    ``max_position_embeddings``), or None when it declares none."""
    params = getattr(backbone, "params", None)
    for name in ("max_sequence_length", "max_position_embeddings"):
        if getattr(params, name, None) is not None:
            return int(getattr(params, name))
    return None


def check_ids(ids: torch.Tensor, vocab_size: int, what: str) -> None:
    """Every id in ``[0, vocab_size)``; otherwise name the first bad one and where it is."""
    bad = (ids < 0) | (ids >= vocab_size)
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise PromptError(
            f"{what} holds id {int(ids[where])} at {list(where)}, outside the vocabulary [0, {vocab_size}); "
            "token ids must come from this model's tokenizer"
        )


def check_prompt(backbone: Any, prompt: Any, gen_length: int) -> None:
    """A ``PromptBatch`` the sampler can run: at least one row, ids in the vocabulary, the longest prompt
    plus the answer within the backbone's context."""
    ids, embeds = prompt.input_ids, prompt.inputs_embeds
    rows = (ids if ids is not None else embeds).shape
    if rows[0] == 0:
        raise PromptError("the batch is empty (0 prompts); pass at least one prompt")
    if ids is not None:
        if ids.dim() != 2:
            raise PromptError(f"input_ids must be [B, P] (or one list of ids), got shape {tuple(ids.shape)}")
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise PromptError(f"input_ids must be integer token ids (torch.long), got {ids.dtype}")
        if embeds is None:  # with embeddings the ids are placeholders (e.g. for image features)
            check_ids(ids, backbone.vocab_size, "the prompt")
    mask = prompt.attention_mask
    if mask is not None:
        if tuple(mask.shape) != tuple(rows[:2]):
            raise PromptError(f"attention_mask must be [B, P] = {list(rows[:2])} like the prompt, got {list(mask.shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()) or not bool(mask.bool().any(-1).all()):
            raise PromptError("attention_mask must hold 1 for real tokens and 0 for (left) padding, with at least one "
                              "real token in every row")
    if prompt.draft is not None:
        check_ids(torch.as_tensor(prompt.draft), backbone.vocab_size, "the infill draft")
    context = context_length(backbone)
    if context is None:
        return
    real = rows[1] if prompt.attention_mask is None else int(prompt.attention_mask.sum(-1).max())
    if real + gen_length > context:
        raise SamplerError(
            f"the prompt ({real} tokens) plus gen_length={gen_length} is {real + gen_length} positions, beyond the "
            f"backbone's context of {context}; shorten the prompt or lower gen_length to at most "
            f"{max(context - real, 0)}"
        )
