"""Evaluate one cell: a trained checkpoint, its tasks, its sampler -> metrics, NFE, speed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dvlm.bench.spec import EvalRunSpec
from dvlm.core.plugins import get_registry


@dataclass
class EvalOutcome:
    metrics: dict[str, float] = field(default_factory=dict)
    """Each task metric's mean over the task's samples, as ``task/metric``."""
    per_sample: dict[str, list[float]] = field(default_factory=dict)
    """Each task metric per sample, in the task's sample order (paired across cells for bootstrap intervals)."""
    nfe: float = 0.0
    """Mean forward passes per sample."""
    tokens_per_forward: float = 0.0
    """Mean answer tokens per forward (end-of-sequence padding excluded)."""
    latency_s_per_sample: float = 0.0
    """Wall time of generation (vision forward included) per sample, batched as configured."""
    kv_rows_recomputed: float = 0.0
    """Mean positions whose keys/values the forwards computed per sample (``GenerationResult.kv_rows_recomputed``)."""
    samples: int = 0
    traces: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per task: the denoising trace of its first sample (see ``denoising_trace``), for the report's figure."""


def evaluate_checkpoint(checkpoint: str | Path, spec: EvalRunSpec, data_root: str | Path | None) -> EvalOutcome:
    """Load ``checkpoint`` and run every task of ``spec`` with its sampler, greedy and batched."""
    import dvlm

    model = dvlm.load_pretrained(checkpoint)
    model.eval()
    registry = get_registry()
    outcome = EvalOutcome()
    nfe_sum = tpf_sum = kv_sum = wall = 0.0
    for task_params in spec.tasks:
        task = registry.build("tasks", task_params, data_root)
        sampler = spec.sampler
        if task.gen_length is not None and hasattr(sampler, "gen_length"):
            update: dict[str, Any] = {"gen_length": task.gen_length}
            if getattr(sampler, "block_length", None) == sampler.gen_length:
                update["block_length"] = task.gen_length  # one block stays one block
            if getattr(sampler, "steps", None) == sampler.gen_length:
                update["steps"] = task.gen_length
            sampler = sampler.model_copy(update=update)
        samples = task.samples()
        predictions: list[str] = []
        generator = torch.Generator().manual_seed(spec.seed)
        if samples:  # untimed, so it also warms up: the first cell of a process would pay one-time costs
            outcome.traces[task_params.kind] = denoising_trace(model, samples[0], sampler, spec.seed)
        for start in range(0, len(samples), spec.batch_size):
            batch = samples[start: start + spec.batch_size]
            began = time.perf_counter()
            result = dvlm.generate(model, prompt=[s.prompt for s in batch], images=[list(s.images) for s in batch],
                                   draft=draft_ids(model, batch), sampler=sampler, generator=generator)
            wall += time.perf_counter() - began
            predictions += result.text
            nfe_sum += result.nfe * len(batch)
            tpf_sum += result.tokens_per_forward * len(batch)
            kv_sum += result.kv_rows_recomputed * len(batch)
        for metric, values in task.score(predictions, samples).items():
            outcome.per_sample[f"{task_params.kind}/{metric}"] = [float(v) for v in values]
            outcome.metrics[f"{task_params.kind}/{metric}"] = sum(values) / max(len(values), 1)
        outcome.samples += len(samples)
    n = max(outcome.samples, 1)
    outcome.nfe, outcome.tokens_per_forward, outcome.latency_s_per_sample = nfe_sum / n, tpf_sum / n, wall / n
    outcome.kv_rows_recomputed = kv_sum / n
    return outcome


def denoising_trace(model: Any, sample: Any, sampler: Any, seed: int) -> dict[str, Any]:
    """One answer decoded again with ``trace=True``: each answer position's token text and the step that
    committed it (-1: never committed, e.g. after an early stop)."""
    import dvlm

    result = dvlm.generate(model, prompt=[sample.prompt], images=[list(sample.images)], draft=draft_ids(model, [sample]),
                           sampler=sampler, generator=torch.Generator().manual_seed(seed), trace=True)
    commit_step = [-1] * result.token_ids.shape[1]
    for event in result.steps:
        for position in event.committed[0].nonzero().flatten().tolist():
            commit_step[position] = event.step
    tokenizer = model.tokenizer
    tokens = [tokenizer.decode([t]) for t in result.token_ids[0].tolist()]
    return {"prompt": sample.prompt, "text": result.text[0], "tokens": tokens, "commit_step": commit_step,
            "steps": len(result.steps)}


def draft_ids(model: Any, samples: list[Any]) -> torch.Tensor | None:
    """``[B, D]`` infill drafts of the samples' constraints: free segments become masks (one per token),
    fixed ones their tokens, then the end token, rows padded with end tokens; None when no sample has one."""
    if not any(s.draft for s in samples):
        return None
    from dvlm.core.generation import backbone_of
    from dvlm.core.tokenizer import encode

    tokens = backbone_of(model).special_tokens
    end = tokens.eot_id if tokens.eot_id is not None else tokens.eos_id
    rows = []
    for sample in samples:
        row: list[int] = []
        for fixed, text in sample.draft:
            ids = encode(model.tokenizer, text)
            row += ids if fixed else [tokens.mask_id] * len(ids)
        rows.append(row + [end] if sample.draft else [])
    width = max(len(r) for r in rows)
    return torch.tensor([r + [end if r else tokens.mask_id] * (width - len(r)) for r in rows])  # [B, D]
