"""The per-run summary that ``--model dvlm`` writes beside lmms-eval's results: how fast the run answered and
how many forwards its answers took, per task, on which devices and with which locked dependencies, so that a
speed claim and a score come from the same run.

Each process counts its own requests (``RunStats``); at the end the counts of every rank are merged
(``merge``): samples add up, and seconds are the *slowest* rank's, because the ranks work in parallel and the
run is over when the last one is. Samples per second is then ``samples / seconds``.

- ``samples``: documents answered; ``requests``: lmms-eval requests (one per choice of a multiple-choice
  document, one per document otherwise).
- ``nfe_mean``: forward passes of the backbone per request. A generation request counts the forwards of the
  batch it ran in (every row takes part in each of them; an early stop ends when the batch's last row ends);
  a likelihood request counts ``mc_num / mc_batch_size`` (one per Monte-Carlo batch).
- ``tokens_per_forward_mean``: answer tokens per forward, per generation request, averaged (null for
  likelihood tasks, which generate nothing).
"""

from __future__ import annotations

import importlib.metadata as metadata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dvlm.core.environment_lock import lock_hash

@dataclass
class TaskStats:
    """What one process did for one task."""

    request_type: str
    samples: int = 0
    """Documents answered (a multiple-choice document makes one likelihood request per choice)."""
    requests: int = 0
    seconds: float = 0.0
    nfe_sum: float = 0.0
    tokens_per_forward_sum: float = 0.0
    generated: int = 0
    """Requests that generated (the denominator of the tokens-per-forward mean)."""


@dataclass
class RunStats:
    """One process's counts, per task (plain data: it travels between ranks as a dict)."""

    tasks: dict[str, TaskStats] = field(default_factory=dict)

    def add(self, task: str, request_type: str, seconds: float, nfe: float,
            tokens_per_forward: float | None = None, new_sample: bool = True) -> None:
        """Count one answered request of ``task`` that took ``seconds`` (its share of its batch) and ``nfe``
        forwards; ``new_sample``: False for the further requests of a document already counted."""
        stats = self.tasks.setdefault(task, TaskStats(request_type))
        stats.samples += int(new_sample)
        stats.requests += 1
        stats.seconds += seconds
        stats.nfe_sum += nfe
        if tokens_per_forward is not None:
            stats.tokens_per_forward_sum += tokens_per_forward
            stats.generated += 1

    def to_dict(self) -> dict[str, Any]:
        return {task: asdict(stats) for task, stats in self.tasks.items()}


def _rate(samples: int, seconds: float) -> float | None:
    return samples / seconds if seconds > 0 else None


def merge(per_rank: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``to_dict()`` of every rank -> per-task and whole-run figures (see the module docstring)."""
    tasks: dict[str, Any] = {}
    for name in sorted({task for rank in per_rank for task in rank}):
        shares = [TaskStats(**rank[name]) for rank in per_rank if name in rank]
        samples = sum(s.samples for s in shares)
        requests = sum(s.requests for s in shares)
        generated = sum(s.generated for s in shares)
        seconds = max(s.seconds for s in shares)
        tasks[name] = {
            "request_type": shares[0].request_type,
            "samples": samples,
            "requests": requests,
            "seconds": seconds,
            "samples_per_s": _rate(samples, seconds),
            "nfe_mean": sum(s.nfe_sum for s in shares) / requests,
            "tokens_per_forward_mean": sum(s.tokens_per_forward_sum for s in shares) / generated if generated else None,
        }
    samples = sum(t["samples"] for t in tasks.values())
    seconds = max((sum(TaskStats(**s).seconds for s in rank.values()) for rank in per_rank), default=0.0)
    return {"samples": samples, "seconds": seconds, "samples_per_s": _rate(samples, seconds), "tasks": tasks}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def summary(per_rank: list[dict[str, Any]], *, devices: list[str], dtype: str | None, batch_size: int,
            sampler: str, pretrained: str) -> dict[str, Any]:
    """The summary document (without the scores, which lmms-eval computes afterwards)."""
    from dvlm.bench.provenance import git_state

    return {
        **merge(per_rank),
        "world_size": len(devices),
        "device": devices[0],
        "devices": devices,
        "dtype": dtype,
        "batch_size": batch_size,
        "sampler": sampler,
        "pretrained": pretrained,
        "lock_sha256": lock_hash(),  # the same key as benchmark rows
        "git_sha": git_state(Path(__file__).resolve().parent)["git_sha"],
        "versions": {name: _version(name) for name in ("dvlm", "torch", "transformers", "lmms_eval", "accelerate")},
    }
