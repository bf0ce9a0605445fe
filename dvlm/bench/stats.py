"""Paired bootstrap intervals and the verdicts of a matrix report.

A claim compares two groups of cells on the same questions ("shift 1/3 beats linear at low NFE",
"complementary beats uniform"). Each group's per-question score is the mean over its cells, so the two
groups are paired by question; the bootstrap resamples questions (with replacement) and recomputes the
difference of the two means, and the 2.5 / 97.5 percentiles are its 95 % interval (Efron & Tibshirani, the
percentile method). A claim that "A is at least as good as B" is *held* when the whole interval of A − B lies
above −margin, *refuted* when it lies below −margin, and otherwise *inconclusive at this sample size*:
an interval that straddles the line means these questions cannot tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

Verdict = Literal["held", "refuted", "inconclusive at this sample size"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95 % bootstrap interval."""

    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def paired_difference(a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, seed: int = 0,
                      level: float = 0.95) -> Interval:
    """Mean of ``a - b`` over paired questions, with its percentile bootstrap interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired scores must be two non-empty 1-d sequences of one length, got {a.shape}, {b.shape}")
    diff = a - b
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, diff.size, size=(resamples, diff.size))  # [resamples, questions]
    means = diff[picks].mean(axis=1)  # [resamples]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(diff.mean()), float(low), float(high))


def mean_interval(values: Sequence[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean of one cell's per-question scores with its bootstrap interval (for error bars)."""
    return paired_difference(values, np.zeros(len(values)), resamples=resamples, seed=seed, level=level)


def at_least(interval: Interval, margin: float = 0.0) -> Verdict:
    """Verdict on "A ≥ B − margin" from the interval of A − B."""
    if interval.low >= -margin:
        return "held"
    if interval.high < -margin:
        return "refuted"
    return "inconclusive at this sample size"


def at_most(interval: Interval, bound: float) -> Verdict:
    """Verdict on "A − B ≤ bound" (e.g. a quality cost no larger than ``bound``)."""
    if interval.high <= bound:
        return "held"
    if interval.low > bound:
        return "refuted"
    return "inconclusive at this sample size"
