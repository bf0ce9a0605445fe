"""AUP, accuracy under parallelism (d3LLM, "d3LLM: Ultra-Fast Diffusion LLM", its ``aup_utils.get_aup``).

A decoder is scored by the area under its accuracy-vs-parallelism curve, the accuracy weighted down where it
falls below the best one: with points ``(rho_i, y_i)`` (rho = tokens per forward, y = accuracy in percent)
sorted by rho, those with ``y_i < y_1 - y_min_offset`` dropped (y_1: the accuracy at the lowest parallelism),

    AUP = rho_1 y_1 + sum_i (rho_i - rho_{i-1}) (y_i W(y_i) + y_{i-1} W(y_{i-1})) / 2,
    W(y) = min(exp(-alpha (1 - y / y_max)), 1),

``y_max`` being the best accuracy of all compared methods. One decoding setting (one point) scores ``rho y``.
Departure: where the reference asserts that no point falls more than ``y_min_offset`` below y_1, such points are
dropped here (the filter the reference applies right after), so a matrix with a poor setting still reports.
"""

from __future__ import annotations

import math


def quality_weight(y: float, y_max: float, alpha: float = 3.0) -> float:
    return min(math.exp(-alpha * (1 - y / y_max)), 1.0) if y_max > 0 else 1.0


def aup(points: list[tuple[float, float]], y_max: float, alpha: float = 3.0, y_min_offset: float = 5.0) -> float:
    """``points``: ``(tokens per forward, accuracy in percent)`` of one decoder's settings."""
    if not points or any(rho <= 0 for rho, _ in points):
        raise ValueError(f"AUP needs at least one point, each with a positive parallelism; got {points}")
    ordered = sorted(points)
    floor = ordered[0][1] - y_min_offset
    kept = [(rho, y) for rho, y in ordered if y >= floor]
    total = kept[0][0] * kept[0][1]
    for (rho_prev, y_prev), (rho, y) in zip(kept, kept[1:]):
        weighted = y * quality_weight(y, y_max, alpha) + y_prev * quality_weight(y_prev, y_max, alpha)
        total += 0.5 * (rho - rho_prev) * weighted
    return total
