"""The ``spec: matrix`` document: a base run (train + eval) and named axes of overrides.

Each cell of the matrix is a ``BenchRunSpec``: a ``TrainSpec`` and an ``EvalRunSpec``. Cells that share
their training spec (same hash) share one trained checkpoint; evaluation runs per cell. Every cell is
validated before anything runs, so a misspelled field or kind in an axis fails at once, naming the
cell and the path.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator

from dvlm.bench.matrix import Cell, expand_matrix
from dvlm.core.errors import SpecError
from dvlm.core.specs import Family, Spec, format_validation_error, non_semantic
from dvlm.train.spec import TrainSpec


def _resolved_sampler(value: Any) -> Any:
    """A preset name or spec file becomes the full sampler mapping, so the cell records what ran."""
    if isinstance(value, str):
        from dvlm.core.sampler_specs import resolve_sampler

        return resolve_sampler(value).model_dump(mode="json")
    return value


class EvalRunSpec(Spec):
    """How a trained model is evaluated: tasks, sampler, batch."""

    tasks: list[Family["tasks"]] = Field(min_length=1)
    """Evaluation tasks; each task's ``gen_length`` (if set) overrides the sampler's."""
    sampler: Family["samplers"]
    """Sampler: a preset name, a spec file, or a mapping."""
    batch_size: int = non_semantic(16, ge=1)
    """Samples per generate call."""
    seed: int = 0
    """Seed of sampling (greedy samplers draw nothing)."""

    @field_validator("sampler", mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        return _resolved_sampler(value)


class BenchRunSpec(Spec):
    """One cell: train (or reuse) a model, then evaluate it."""

    train: TrainSpec
    eval: EvalRunSpec


class ReportSpec(Spec):
    """What the report checks and plots (axis names and values of this matrix)."""

    metric: str | None = None
    """Quality metric of the findings and plots, e.g. ``shapes_vqa/exact_match`` (default: the first)."""
    claims: dict[str, dict[str, Any]] = {}
    """Claims to check: ``schedule`` ({axis, nfe_axis, low_nfe, order}), ``masking`` ({axis, order}),
    ``cache`` ({axis, cached, uncached, min_speedup, max_cost}), ``threshold`` ({axis, fast, exact, match,
    max_cost}), ``infill`` ({constraint, constrained, free, min_kept, max_cost}: task metrics), ``versus``
    ({axis, reference, max_cost}: every other value of the axis against the reference cell); each is decided
    by a paired bootstrap interval, see ``dvlm.bench.report.findings``."""
    plots: dict[str, Any] = {}
    """``quality_vs_nfe`` ({series, x, skip}: one line per value of ``series``, points grouped by axis ``x``,
    cells matching ``skip`` (axis -> value) left out), ``latency_per`` (an axis name), ``pareto`` (true: quality
    vs latency and vs NFE of every cell with intervals and the frontier), ``traces`` ({task, axis, where}: the
    denoising trace of the task's first sample, one panel per value of ``axis`` among the cells matching
    ``where``)."""


class MatrixSpec(Spec):
    """A benchmark matrix (``dvlm bench``)."""

    spec: Literal["matrix"] = "matrix"
    name: str
    """Name of the matrix (used in reports)."""
    base: dict[str, Any]
    """The run every cell starts from: ``{train: ..., eval: ...}``."""
    axes: dict[str, dict[str, dict[str, Any]]] = {}
    """Axis name -> value name -> overrides (dotted path -> value)."""
    exclude: list[dict[str, str]] = []
    """Combinations to skip: each entry maps axis names to values; a cell matching all is dropped."""
    baseline: dict[str, str] = {}
    """Axis values that speedups are measured against, e.g. ``{cache: none}``: a cell's speedup is the
    latency of the cell equal to it except on these axes, divided by its own."""
    workers: int = non_semantic(1, ge=1)
    """Parallel worker processes for cells (overridden by ``dvlm bench --workers``)."""
    report: ReportSpec = non_semantic(ReportSpec())
    """Findings and plots of ``report.md``."""

    def cells(self, source: str = "<matrix>") -> list[tuple[Cell, BenchRunSpec]]:
        base = dict(self.base)
        if isinstance(base.get("eval"), dict) and "sampler" in base["eval"]:
            base["eval"] = {**base["eval"], "sampler": _resolved_sampler(base["eval"]["sampler"])}
        for axis, value in self.baseline.items():
            if value not in self.axes.get(axis, {}):
                raise SpecError(f"{source}: baseline: axis '{axis}' has no value '{value}'")
        out = []
        adapter = TypeAdapter(BenchRunSpec)
        for cell in expand_matrix(base, self.axes, self.exclude, source):
            try:
                out.append((cell, adapter.validate_python(cell.run)))
            except ValidationError as err:
                raise SpecError(format_validation_error(err, cell.run, f"{source} [cell {cell.name}]")) from None
            except SpecError as err:
                raise SpecError(f"{source} [cell {cell.name}]: {err}") from None
        return out
