"""Reports of a matrix run: terminal summary, ``report.md`` with findings, and PNG plots.

Speedups compare each cell with its baseline cell (same axis values except those named in the
matrix's ``baseline``). The findings check LaViDa's directional claims on whatever cells the matrix
has; a claim whose cells are missing is reported as not tested, never guessed.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def latest_ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last ok row of each cell (a cell re-run after a failure has several rows)."""
    by_hash: dict[str, dict] = {}
    for row in rows:
        if row["status"] == "ok":
            by_hash[row["spec_hash"]] = row
    return list(by_hash.values())


def quality_metrics(rows: list[dict[str, Any]]) -> list[str]:
    names = {m for row in rows for m in row["metrics"] if "/" in m}
    return sorted(names)


def add_speedups(rows: list[dict[str, Any]], baseline: dict[str, str]) -> None:
    """``row["speedup"]`` = baseline cell latency / cell latency (None without a baseline cell)."""
    index = {tuple(sorted(r["axes"].items())): r for r in rows}
    for row in rows:
        ref_axes = {**row["axes"], **{a: v for a, v in baseline.items() if a in row["axes"]}}
        ref = index.get(tuple(sorted(ref_axes.items())))
        ok = ref is not None and ref["latency_s_per_sample"] and row["latency_s_per_sample"]
        row["speedup"] = ref["latency_s_per_sample"] / row["latency_s_per_sample"] if ok else None


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    metrics = quality_metrics(rows)
    axes = list(rows[0]["axes"]) if rows else []
    header = [*axes, *metrics, "NFE", "tok/fwd", "latency s", "speedup"]
    body = [
        [*(r["axes"][a] for a in axes), *(_fmt(r["metrics"].get(m)) for m in metrics), _fmt(r["nfe"], 1),
         _fmt(r["tokens_per_forward"], 2), _fmt(r["latency_s_per_sample"], 4), _fmt(r.get("speedup"), 2)]
        for r in rows
    ]
    return header, body


def print_summary(rows: list[dict[str, Any]], failed: list[dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console()
    header, body = summary_rows(rows)
    table = Table(title=f"{len(rows)} cells")
    for name in header:
        table.add_column(name.replace("/", "/\n"), overflow="fold")  # task/\nmetric keeps columns narrow
    for line in body:
        table.add_row(*line)
    console.print(table)
    for row in failed:
        console.print(f"[red]failed[/red] {row['cell']}: {row['error']}")


# -- findings ---------------------------------------------------------------------------------------


def _mean(rows: list[dict], metric: str) -> float | None:
    values = [r["metrics"][metric] for r in rows if metric in r["metrics"]]
    return statistics.fmean(values) if values else None


def _select(rows: list[dict], **axes: str) -> list[dict]:
    return [r for r in rows if all(r["axes"].get(a) == v for a, v in axes.items())]


def findings(rows: list[dict[str, Any]], claims: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Check each claim on the rows. ``claims`` comes from the report config below (axis names/values)."""
    out = []
    metric = claims.get("metric") or (quality_metrics(rows) or [None])[0]
    shift = claims.get("schedule")
    if shift:
        low = _select(rows, **{shift["nfe_axis"]: shift["low_nfe"]})
        means = {name: _mean(_select(low, **{shift["axis"]: value}), metric) for name, value in shift["order"].items()}
        held = None if None in means.values() else all(a >= b for a, b in zip(list(means.values()), list(means.values())[1:]))
        out.append({"claim": f"schedule {' ≥ '.join(means)} at {shift['nfe_axis']} {shift['low_nfe']} (LaViDa Table 3b)",
                    "held": held, "evidence": {k: v for k, v in means.items()}})
    masking = claims.get("masking")
    if masking:
        means = {name: _mean(_select(rows, **{masking["axis"]: value}), metric) for name, value in masking["order"].items()}
        values = list(means.values())
        held = None if None in values else values[0] >= values[1]
        out.append({"claim": f"{' ≥ '.join(means)} at equal budget (LaViDa Table 4a)", "held": held, "evidence": means})
    cache = claims.get("cache")
    if cache:
        fast, slow = (_select(rows, **{cache["axis"]: cache[k]}) for k in ("cached", "uncached"))
        lat_fast = statistics.fmean(r["latency_s_per_sample"] for r in fast) if fast else None
        lat_slow = statistics.fmean(r["latency_s_per_sample"] for r in slow) if slow else None
        q_fast, q_slow = _mean(fast, metric), _mean(slow, metric)
        speedup = lat_slow / lat_fast if lat_fast and lat_slow else None
        cost = None if q_fast is None or q_slow is None else q_slow - q_fast
        held = None if speedup is None or cost is None else speedup >= cache.get("min_speedup", 1.5) and cost <= cache.get("max_cost", 0.05)
        out.append({"claim": f"prefix cache much faster (≥ {cache.get('min_speedup', 1.5)}×) at a small quality cost "
                             f"(≤ {cache.get('max_cost', 0.05)}) (LaViDa Table 3a)",
                    "held": held, "evidence": {"speedup": speedup, "quality_cost": cost}})
    for item in out:
        item["metric"] = metric
    return out


# -- files ------------------------------------------------------------------------------------------


def write_plots(rows: list[dict[str, Any]], folder: Path, plots: dict[str, Any]) -> list[Path]:
    """Quality vs NFE per schedule, and latency per cache policy (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    metric = plots.get("metric") or (quality_metrics(rows) or [None])[0]
    spec = plots.get("quality_vs_nfe")
    if spec and metric:
        fig, ax = plt.subplots(figsize=(6, 4))
        skip = spec.get("skip", {})  # cells left off the lines, e.g. a decoder without a schedule
        kept = [r for r in rows if not any(r["axes"].get(a) == v for a, v in skip.items())]
        for value in dict.fromkeys(r["axes"].get(spec["series"]) for r in kept):
            if value is None:
                continue
            chosen = _select(kept, **{spec["series"]: value})
            points = sorted((statistics.fmean(r["nfe"] for r in group), _mean(group, metric))
                            for group in _groups(chosen, spec["x"]))
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{spec['series']}={value}")
        ax.set_xlabel("NFE (forward passes per answer)")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} vs NFE per {spec['series']}")
        ax.legend()
        fig.tight_layout()
        path = folder / "quality_vs_nfe.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    spec = plots.get("latency_per")
    if spec:
        values = [v for v in dict.fromkeys(r["axes"].get(spec) for r in rows) if v is not None]
        latencies = [statistics.fmean(r["latency_s_per_sample"] * 1000 for r in _select(rows, **{spec: v})) for v in values]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.bar(values, latencies, color="#4c72b0")
        ax.set_ylabel("latency per sample (ms)")
        ax.set_title(f"latency per {spec}")
        fig.tight_layout()
        path = folder / f"latency_per_{spec}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def _groups(rows: list[dict], axis: str) -> list[list[dict]]:
    keys = dict.fromkeys(r["axes"].get(axis) for r in rows)
    return [[r for r in rows if r["axes"].get(axis) == k] for k in keys]


def write_report(rows: list[dict[str, Any]], failed: list[dict[str, Any]], folder: Path, name: str,
                 report: Any, wall_time_s: float | None, cells_run: int | None = None) -> Path:
    """``report.md`` (+ plots) from the rows; ``report`` is the matrix's ``ReportSpec``."""
    header, body = summary_rows(rows)
    found = findings(rows, {**report.claims, "metric": report.metric})
    plots = write_plots(rows, folder, {**report.plots, "metric": report.metric}) if rows else []
    first = rows[0] if rows else (failed[0] if failed else {})
    lines = [f"# Benchmark matrix `{name}`", ""]
    if wall_time_s is not None:
        resumed = "" if cells_run is None else f"; {cells_run} cells ran in it, the others were resumed from earlier runs"
        lines += [f"Wall time of the last invocation: {wall_time_s:.0f} s{resumed}. "
                  f"{len(rows)} cells with results, {len(failed)} failed.", ""]
    hw = first.get("hardware") or {}
    lines += [f"Machine: {hw.get('machine')} · {hw.get('cpu_count')} CPUs · torch threads {hw.get('torch_threads')} · "
              f"GPUs {[g['name'] for g in hw.get('gpus', [])] or 'none'} · Python {hw.get('python')} · "
              f"git {str(first.get('git_sha'))[:10]}{' (dirty)' if first.get('git_dirty') else ''} · "
              f"lock {str(first.get('lock_sha256'))[:12]}", ""]
    lines += ["## Findings", "", "| claim | held here? | evidence |", "|---|---|---|"]
    for item in found:
        verdict = {True: "yes", False: "**no**", None: "not tested"}[item["held"]]
        evidence = ", ".join(f"{k} = {_fmt(v)}" for k, v in item["evidence"].items())
        lines.append(f"| {item['claim']} ({item['metric']}) | {verdict} | {evidence} |")
    lines += ["", "## Results", "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    if failed:
        lines += ["", "## Failed cells", ""] + [f"- `{r['cell']}`: {r['error']}" for r in failed]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
