"""Run a matrix: train each distinct training spec once, evaluate every cell, append one row per cell.

Phase 1 trains the distinct training specs (cells sharing a training spec hash share its checkpoint,
cached under ``<out>/train/<hash>/`` and reused across runs). Phase 2 evaluates the cells. Cells with a
row already in ``results.jsonl`` are skipped, so a re-run resumes; rows are written only when a cell
completes, so an interrupted cell leaves none. Jobs run inline (one worker), in local worker processes,
or as Ray tasks; all executors produce the same rows.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from rich.progress import Progress

from dvlm.bench.matrix import Cell
from dvlm.bench.provenance import provenance
from dvlm.bench.results import ResultsStore, make_row
from dvlm.bench.spec import BenchRunSpec, MatrixSpec
from dvlm.core.specs import spec_hash

Executor = Literal["local", "ray"]


# -- jobs (top-level functions: they run in worker processes and Ray tasks) ---------------------------


def _limit_threads(workers: int) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def moved_into(path: str, folder: Path) -> str:
    """A path a ``done.json`` recorded inside its training ``folder``, found where the folder is now: markers
    hold the path as seen from the working directory of the run that trained, so a results folder copied
    elsewhere (or a matrix run from another directory) still reuses its trained models."""
    parts = Path(path).parts
    if Path(path).exists() or folder.name not in parts:
        return path
    return str(folder.joinpath(*parts[len(parts) - parts[::-1].index(folder.name):]))


def train_job(train: dict[str, Any], folder: str, workers: int = 1) -> dict[str, Any]:
    """Train (or finish training) one spec into ``folder``; cached by a ``done.json`` marker."""
    marker = Path(folder) / "done.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        moved = {key: moved_into(info[key], Path(folder)) for key in ("checkpoint", "data_root") if info.get(key)}
        return {**info, **moved}
    _limit_threads(workers)
    from dvlm.train.loop import train as run_training
    from dvlm.train.spec import TrainSpec

    spec = TrainSpec.model_validate(train).model_copy(update={"out_dir": folder})
    result = run_training(spec, resume=True, progress=False, log=lambda *a, **k: None)
    info = {
        "checkpoint": str(result.checkpoint),
        "data_root": spec.data.root or str(Path(folder) / "data"),
        "train_wall_time_s": result.wall_time_s,
        "train_metrics": result.eval,
        "final_loss": result.last_loss,
    }
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(info) + "\n")
    os.replace(tmp, marker)
    return info


def eval_job(run: dict[str, Any], trained: dict[str, Any], workers: int = 1) -> dict[str, Any]:
    _limit_threads(workers)
    from dvlm.bench.evaluate import evaluate_checkpoint

    spec = BenchRunSpec.model_validate(run)
    began = time.perf_counter()
    outcome = asdict(evaluate_checkpoint(trained["checkpoint"], spec.eval, trained["data_root"]))
    return {**outcome, "duration_s": time.perf_counter() - began}


def _guarded(job: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run a job; an exception becomes ``{"error": ...}`` so one broken cell does not stop the matrix."""
    try:
        return {"ok": job(*args)}
    except Exception as exc:  # noqa: BLE001 - recorded in the row, with the traceback's last frames
        return {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=-3)}


# -- executors --------------------------------------------------------------------------------------


def _run_jobs(jobs: list[tuple[Callable[..., dict], tuple]], workers: int, executor: Executor) -> Iterable[tuple[int, dict]]:
    """Yield ``(index, outcome)`` as jobs finish."""
    if executor == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"), num_cpus=None if os.environ.get("RAY_ADDRESS") else workers,
                     include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1)(_guarded)
        pending = {remote.remote(job, *args): i for i, (job, args) in enumerate(jobs)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(done[0]), ray.get(done[0])
    elif workers == 1:
        for i, (job, args) in enumerate(jobs):
            yield i, _guarded(job, *args)
    else:
        import multiprocessing

        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_guarded, job, *args): i for i, (job, args) in enumerate(jobs)}
            for future in as_completed(futures):
                yield futures[future], future.result()


# -- the matrix -------------------------------------------------------------------------------------


def run_matrix(matrix: MatrixSpec, out: str | Path, *, source: str = "<matrix>", workers: int | None = None,
               executor: Executor = "local", progress: bool = True) -> list[dict[str, Any]]:
    """Run every cell without a row yet; return all rows of the results folder."""
    workers = workers or matrix.workers
    cells = matrix.cells(source)
    store = ResultsStore(out)
    store.open(matrix.name)
    done = {row["spec_hash"] for row in store.rows() if row["status"] == "ok"}
    todo = [(cell, run, spec_hash(run)) for cell, run in cells if spec_hash(run) not in done]
    prov = provenance()
    train_hashes: dict[str, Any] = {}
    for _, run, _ in todo:
        train_hashes.setdefault(spec_hash(run.train), run.train)
    with Progress(disable=not progress, transient=False) as bar:
        trained: dict[str, dict] = {}
        hashes = list(train_hashes)
        task = bar.add_task(f"train {len(hashes)} model(s)", total=len(hashes))
        jobs = [(train_job, (train_hashes[h].model_dump(mode="json"), str(Path(out) / "train" / h[:16]), workers))
                for h in hashes]
        for i, outcome in _run_jobs(jobs, workers, executor):
            trained[hashes[i]] = outcome
            bar.advance(task)
        task = bar.add_task(f"evaluate {len(todo)} cell(s) of {len(cells)}", total=len(todo))
        eval_jobs, eval_cells = [], []
        for cell, run, digest in todo:
            train_outcome = trained[spec_hash(run.train)]
            if "error" in train_outcome:
                store.append(_row(cell, run, digest, prov, error="training failed: " + train_outcome["error"]))
                bar.advance(task)
                continue
            eval_jobs.append((eval_job, (run.model_dump(mode="json"), train_outcome["ok"], workers)))
            eval_cells.append((cell, run, digest, train_outcome["ok"]))
        for i, outcome in _run_jobs(eval_jobs, workers, executor):
            cell, run, digest, train_info = eval_cells[i]
            store.append(_row(cell, run, digest, prov, outcome=outcome.get("ok"), error=outcome.get("error"),
                              train_info=train_info))
            bar.advance(task)
    return store.rows()


def _row(cell: Cell, run: BenchRunSpec, digest: str, prov: dict, *, outcome: dict | None = None,
         error: str | None = None, train_info: dict | None = None) -> dict:
    outcome = outcome or {}
    metrics = dict(outcome.get("metrics", {}))
    if train_info:
        metrics["train_wall_time_s"] = train_info["train_wall_time_s"]
    return make_row(
        spec_hash=digest, cell=cell.name, axes=cell.axes, spec=run.model_dump(mode="json"),
        status="failed" if error else "ok", error=error, provenance=prov, metrics=metrics,
        per_sample=outcome.get("per_sample"), traces=outcome.get("traces"),
        nfe=outcome.get("nfe"), tokens_per_forward=outcome.get("tokens_per_forward"),
        latency_s_per_sample=outcome.get("latency_s_per_sample"), kv_rows_recomputed=outcome.get("kv_rows_recomputed"),
        seeds={"train": run.train.seed, "data": run.train.data.synth_seed, "eval": run.eval.seed},
        duration_s=outcome.get("duration_s"),
    )
