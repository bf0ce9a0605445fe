"""Evaluation during training: masked-diffusion loss and exact-match answers on validation rows.

Both are deterministic for a given model: the loss uses fixed masks (seeded per batch, the same at
every evaluation, so successive values are comparable) and generation is greedy. Evaluation runs
inside ``torch.random.fork_rng`` so it never moves the training run's random streams.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import torch

from dvlm.data.batching import collate
from dvlm.data.encode import ConversationEncoder
from dvlm.data.llava import Record
from dvlm.train.determinism import generator, python_rng
from dvlm.train.model import TrainingModel


def normalize_answer(text: str) -> str:
    """Exact-match normalisation: surrounding space, one trailing period and case are ignored."""
    text = text.strip()
    return (text[:-1] if text.endswith(".") else text).strip().lower()


@torch.no_grad()
def evaluate(model: TrainingModel, records: Sequence[Record], encoder: ConversationEncoder, masking: Any, *,
             seed: int, batch_size: int, eos_id: int, device: torch.device, autocast: Any,
             sampler: Any = None, gathered: Any = contextlib.nullcontext) -> dict[str, float]:
    """``{"val_loss": ..., "exact_match": ...}`` (exact match only when a sampler is given)."""
    was_training = model.training
    model.eval()
    metrics: dict[str, float] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        losses = []
        for start in range(0, len(records), batch_size):
            rows = records[start: start + batch_size]
            batch = collate([encoder(r, python_rng(seed, "eval-example", r.id)) for r in rows], eos_id)
            batch = to_device(batch, device)
            with autocast():
                loss, _ = model(batch, masking, generator(seed, "eval-mask", start))
            losses.append(float(loss))
        metrics["val_loss"] = sum(losses) / len(losses)
        if sampler is not None:
            with gathered():  # FSDP: generation calls the backbone directly, past the root's gather
                metrics["exact_match"] = exact_match(model, records, encoder, sampler, batch_size)
    model.train(was_training)
    return metrics


def exact_match(model: TrainingModel, records: Sequence[Record], encoder: ConversationEncoder, sampler: Any,
                batch_size: int) -> float:
    """Fraction of rows whose greedy answer equals the reference after ``normalize_answer``: the prompt is
    formatted by the model (``DiffusionVLM.prompt_batch``), with the template and tokenizer it trained with."""
    from dvlm.core.generation import run_sampler

    vlm = model.model
    hits = 0
    for start in range(0, len(records), batch_size):
        rows = records[start: start + batch_size]
        prompts = [encoder.prompt(r) for r in rows]
        batch = vlm.prompt_batch([context for context, _ in prompts], [list(r.images) for r in rows],
                                 gen_length=sampler.gen_length)
        result = run_sampler(vlm.backbone, batch, sampler, tokenizer=vlm.tokenizer)
        hits += sum(normalize_answer(text) == normalize_answer(answer)
                    for text, (_, answer) in zip(result.text, prompts))
    return hits / len(records)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
