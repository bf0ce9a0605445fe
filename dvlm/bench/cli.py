"""``dvlm bench MATRIX.yaml``: run a benchmark matrix, then print and write its report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer


def bench_command(
    matrix: Annotated[Path, typer.Argument(help="A `spec: matrix` file (YAML or JSON).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Results folder (default runs/bench/<name>).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel worker processes (default: the matrix's).")] = None,
    executor: Annotated[str, typer.Option(help="local (worker processes) or ray (a Ray cluster; RAY_ADDRESS).")] = "local",
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Run every cell without a result yet (re-running resumes), then write results.jsonl, report.md and plots."""
    from rich.console import Console

    from dvlm.bench.report import add_speedups, latest_ok, print_summary, write_report
    from dvlm.bench.results import ResultsStore
    from dvlm.bench.runner import run_matrix
    from dvlm.core.errors import SpecError
    from dvlm.core.specs import load_spec

    if executor not in ("local", "ray"):
        raise SpecError(f"--executor must be 'local' or 'ray', got '{executor}'")
    spec = load_spec(matrix)
    if spec.spec != "matrix":
        raise SpecError(f"{matrix}: `dvlm bench` needs a `spec: matrix` file, this one is `spec: {spec.spec}`")
    folder = out or Path("runs") / "bench" / spec.name
    began, stamp = time.perf_counter(), time.time()
    rows = run_matrix(spec, folder, source=str(matrix), workers=workers, executor=executor, progress=progress)
    wall = time.perf_counter() - began
    ran = sum(r["started_at"] >= stamp for r in rows)
    order = {cell.name: i for i, (cell, _) in enumerate(spec.cells(str(matrix)))}
    ok = sorted((r for r in latest_ok(rows) if r["cell"] in order), key=lambda r: order[r["cell"]])
    failed = [r for r in rows if r["status"] == "failed" and r["cell"] in order
              and r["cell"] not in {o["cell"] for o in ok}]
    add_speedups(ok, spec.baseline)
    print_summary(ok, failed, metric=spec.report.metric)
    # a results folder shared with another matrix (e.g. the decoding zoo reusing the quickstart's trained models)
    # keeps that matrix's report.md: this one's report goes into a subfolder named for it
    owner = ResultsStore(folder).owner()
    shared = owner != spec.name if owner is not None else any(r["cell"] not in order for r in rows)
    report_folder = Path(folder) / spec.name if shared else Path(folder)
    report_folder.mkdir(parents=True, exist_ok=True)
    report = write_report(ok, failed, report_folder, spec.name, spec.report, wall, ran)
    Console().print(f"results: {folder / 'results.jsonl'} · report: {report} · wall time {wall:.0f} s")
