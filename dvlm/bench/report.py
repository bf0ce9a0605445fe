"""Reports of a matrix run: terminal summary, ``report.md`` with findings, and PNG plots.

Speedups compare each cell with its baseline cell (same axis values except those named in the
matrix's ``baseline``). The findings check LaViDa's directional claims on whatever cells the matrix
has, each with a paired bootstrap interval over the evaluation questions and a verdict (held, refuted,
or inconclusive at this sample size); a claim whose cells are missing is reported as not tested, never
guessed.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dvlm.bench.aup import aup
from dvlm.bench.stats import Interval, Verdict, at_least, at_most, mean_interval, paired_difference


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


def row_aup(row: dict[str, Any], metric: str | None) -> float | None:
    """The AUP of the cell's one decoding setting (``dvlm.bench.aup``): tokens per forward x accuracy in %."""
    value, rho = row["metrics"].get(metric) if metric else None, row.get("tokens_per_forward")
    return None if value is None or not rho else aup([(rho, 100 * value)], y_max=100 * value)


def summary_rows(rows: list[dict[str, Any]], metric: str | None = None,
                 intervals: bool = False) -> tuple[list[str], list[list[str]]]:
    """One line per cell: axes, quality (with its 95 % bootstrap interval over the questions when
    ``intervals``), NFE, tokens per forward, K/V rows recomputed per sample, latency, speedup, and AUP of
    ``metric`` (default: the first quality metric)."""
    metrics = quality_metrics(rows)
    metric = metric or (metrics or [None])[0]
    axes = list(rows[0]["axes"]) if rows else []
    header = [*axes, *metrics, "NFE", "tok/fwd", "K/V rows", "latency s", "speedup", f"AUP ({metric})"]
    body = [
        [*(r["axes"][a] for a in axes), *(_quality(r, m, intervals) for m in metrics), _fmt(r["nfe"], 1),
         _fmt(r["tokens_per_forward"], 2), _fmt(r.get("kv_rows_recomputed"), 0), _fmt(r["latency_s_per_sample"], 4),
         _fmt(r.get("speedup"), 2), _fmt(row_aup(r, metric), 1)]
        for r in rows
    ]
    return header, body


def _quality(row: dict[str, Any], metric: str, interval: bool) -> str:
    scores = row.get("per_sample", {}).get(metric)
    if not interval or not scores:
        return _fmt(row["metrics"].get(metric))
    found = mean_interval(scores)
    return f"{row['metrics'][metric]:.3f} [{found.low:.3f}, {found.high:.3f}]"


def print_summary(rows: list[dict[str, Any]], failed: list[dict[str, Any]], console: Console | None = None,
                  metric: str | None = None) -> None:
    console = console or Console()
    header, body = summary_rows(rows, metric)
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


def _per_question(rows: list[dict], metric: str) -> list[float] | None:
    """Each question's score averaged over the cells of a group (None: no cells, or cells without
    per-sample scores of ``metric``, or cells that saw different numbers of questions)."""
    arrays = [r.get("per_sample", {}).get(metric) for r in rows]
    if not arrays or any(a is None for a in arrays) or len({len(a) for a in arrays}) != 1 or not arrays[0]:
        return None
    return [statistics.fmean(column) for column in zip(*arrays)]


def _compare(better: list[dict], worse: list[dict], metric: str) -> Interval | None:
    """Paired bootstrap interval of mean(better) − mean(worse) over questions."""
    a, b = _per_question(better, metric), _per_question(worse, metric)
    if a is None or b is None or len(a) != len(b):
        return None
    return paired_difference(a, b)


def _combine(verdicts: list[Verdict | None]) -> Verdict | None:
    """All parts held -> held; any refuted -> refuted; a missing part -> not tested; else inconclusive."""
    if any(v is None for v in verdicts) or not verdicts:
        return None
    if "refuted" in verdicts:
        return "refuted"
    return "held" if all(v == "held" for v in verdicts) else "inconclusive at this sample size"


def findings(rows: list[dict[str, Any]], claims: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Check each claim on the rows with paired bootstrap intervals over questions (``dvlm.bench.stats``).

    Each finding has ``claim``, ``verdict`` (held / refuted / inconclusive at this sample size / None when
    its cells are missing), ``intervals`` (name -> Interval of a difference of means) and ``evidence``.
    """
    out = []
    metric = claims.get("metric") or (quality_metrics(rows) or [None])[0]
    shift = claims.get("schedule")
    if shift:
        low = _select(rows, **{shift["nfe_axis"]: shift["low_nfe"]})
        names = list(shift["order"])
        groups = {name: _select(low, **{shift["axis"]: value}) for name, value in shift["order"].items()}
        intervals = {f"{a} − {b}": _compare(groups[a], groups[b], metric) for a, b in zip(names, names[1:])}
        out.append({"claim": f"schedule {' ≥ '.join(names)} at {shift['nfe_axis']} {shift['low_nfe']} (LaViDa Table 3b)",
                    "verdict": _combine([None if i is None else at_least(i) for i in intervals.values()]),
                    "intervals": intervals, "evidence": {n: _mean(g, metric) for n, g in groups.items()}})
    masking = claims.get("masking")
    if masking:
        (name_a, value_a), (name_b, value_b) = list(masking["order"].items())[:2]
        group_a, group_b = (_select(rows, **{masking["axis"]: v}) for v in (value_a, value_b))
        interval = _compare(group_a, group_b, metric)
        out.append({"claim": f"{name_a} ≥ {name_b} at equal budget (LaViDa Table 4a)",
                    "verdict": None if interval is None else at_least(interval),
                    "intervals": {f"{name_a} − {name_b}": interval},
                    "evidence": {name_a: _mean(group_a, metric), name_b: _mean(group_b, metric)}})
    cache = claims.get("cache")
    if cache:
        fast, slow = (_select(rows, **{cache["axis"]: cache[k]}) for k in ("cached", "uncached"))
        lat_fast = statistics.fmean(r["latency_s_per_sample"] for r in fast) if fast else None
        lat_slow = statistics.fmean(r["latency_s_per_sample"] for r in slow) if slow else None
        speedup = lat_slow / lat_fast if lat_fast and lat_slow else None
        min_speedup, max_cost = cache.get("min_speedup", 1.5), cache.get("max_cost", 0.05)
        cost = _compare(slow, fast, metric)  # uncached − cached: the quality the cache costs
        speed_verdict = None if speedup is None else "held" if speedup >= min_speedup else "refuted"
        out.append({"claim": f"prefix cache much faster (≥ {min_speedup}×) at a small quality cost (≤ {max_cost}) "
                             "(LaViDa Table 3a)",
                    "verdict": _combine([speed_verdict, None if cost is None else at_most(cost, max_cost)]),
                    "intervals": {"quality cost (uncached − cached)": cost}, "evidence": {"speedup": speedup}})
    threshold = claims.get("threshold")
    if threshold:
        fast, exact = (_select(rows, **{threshold["axis"]: threshold[k]}) for k in ("fast", "exact"))
        if threshold.get("match"):  # compare like with like, e.g. only the cells both decoders share
            fast, exact = _select(fast, **threshold["match"]), _select(exact, **threshold["match"])
        tpf = [statistics.fmean(r["tokens_per_forward"] for r in g) if g else None for g in (fast, exact)]
        ratio = tpf[0] / tpf[1] if None not in tpf and tpf[1] else None
        margin = threshold.get("max_cost", 0.05)
        quality = _compare(fast, exact, metric)
        out.append({"claim": f"Fast-dLLM threshold decoding: more tokens per forward at equal quality "
                             f"(within {margin}) than one token per step",
                    "verdict": _combine([None if ratio is None else "held" if ratio > 1 else "refuted",
                                         None if quality is None else at_least(quality, margin)]),
                    "intervals": {"quality (threshold − exact)": quality},
                    "evidence": {"tokens/forward ratio": ratio, "threshold tok/fwd": tpf[0], "exact tok/fwd": tpf[1]}})
    versus = claims.get("versus")
    if versus:
        out += _versus_reference(rows, versus, metric)
    infill = claims.get("infill")
    if infill:
        kept = _per_question(rows, infill["constraint"])
        constrained, free = _per_question(rows, infill["constrained"]), _per_question(rows, infill["free"])
        min_kept, margin = infill.get("min_kept", 0.95), infill.get("max_cost", 0.05)
        kept_interval = None if kept is None else mean_interval(kept)
        quality = None if constrained is None or free is None or len(constrained) != len(free) \
            else paired_difference(constrained, free)
        out.append({"claim": f"infilling keeps a fixed word (≥ {min_kept} of answers) at no quality cost "
                             f"(within {margin}) against free captions (LaViDa's bidirectional constrained generation)",
                    # "kept ≥ min_kept" is "kept − 0 ≥ −(−min_kept)"
                    "verdict": _combine([None if kept_interval is None else at_least(kept_interval, -min_kept),
                                         None if quality is None else at_least(quality, margin)]),
                    "intervals": {"constraint kept": kept_interval, "quality (constrained − free)": quality},
                    "evidence": {}, "metric": infill["constrained"]})
    for item in out:
        item.setdefault("metric", metric)
    return out


def _versus_reference(rows: list[dict], spec: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    """One finding per value of ``spec["axis"]``: its quality cost against the ``reference`` value's cell with
    the same other axes (paired bootstrap over questions), decided against ``max_cost``, with its speed."""
    axis, reference, margin = spec["axis"], spec["reference"], spec.get("max_cost", 0.05)
    index = {tuple(sorted(r["axes"].items())): r for r in rows}
    out = []
    for value in dict.fromkeys(r["axes"].get(axis) for r in rows):
        if value in (None, reference):
            continue
        cells = _select(rows, **{axis: value})
        refs = [index.get(tuple(sorted({**r["axes"], axis: reference}.items()))) for r in cells]
        pairs = [(c, r) for c, r in zip(cells, refs) if r is not None]
        cost = _compare([r for _, r in pairs], [c for c, _ in pairs], metric) if pairs else None
        lat = [_mean_of("latency_s_per_sample", [p[i] for p in pairs]) for i in (0, 1)]
        kv = [_mean_of("kv_rows_recomputed", [p[i] for p in pairs]) for i in (0, 1)]
        out.append({"claim": f"{axis}={value} costs at most {margin} against {axis}={reference}",
                    "verdict": None if cost is None else at_most(cost, margin),
                    "intervals": {f"quality cost ({reference} − {value})": cost},
                    "evidence": {"speedup": lat[1] / lat[0] if None not in lat else None,
                                 "tok/fwd": _mean_of("tokens_per_forward", [p[0] for p in pairs]),
                                 "K/V rows ratio": kv[0] / kv[1] if None not in kv else None}})
    return out


def _mean_of(key: str, rows: list[dict]) -> float | None:
    """Mean of a row field over ``rows`` (None when empty, or when a row lacks it, e.g. rows of older runs)."""
    return statistics.fmean(r[key] for r in rows) if rows and all(r.get(key) for r in rows) else None


def frontier_cells(rows: list[dict[str, Any]], metric: str, x_key: str) -> list[str]:
    """Names of the cells on the Pareto frontier of ``metric`` (higher) against ``x_key`` (lower), by x."""
    cells = [r for r in rows if r.get(x_key) is not None and metric in r["metrics"]]
    front = pareto_front([(float(r[x_key]), float(r["metrics"][metric])) for r in cells])
    return [cells[i]["cell"] for i in front]


# -- files ------------------------------------------------------------------------------------------


def write_plots(rows: list[dict[str, Any]], folder: Path, plots: dict[str, Any]) -> list[Path]:
    """Quality vs NFE per schedule, latency per cache policy, and the Pareto plots of every cell (PNG)."""
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
    if plots.get("pareto") and metric:
        for x_key, label in (("latency_s_per_sample", "latency per sample (s)"), ("nfe", "NFE per answer")):
            written.append(_pareto_plot(plt, rows, metric, x_key, label, folder))
    spec = plots.get("traces")
    if spec:
        chosen = _select(rows, **spec.get("where", {}))
        panels = [(r["axes"].get(spec["axis"]), r["traces"][spec["task"]]) for r in chosen
                  if spec["task"] in r.get("traces", {})]
        if panels:
            written.append(_trace_figure(plt, panels, spec, folder))
    return written


def trace_grid(commit_step: list[int], steps: int) -> list[list[float]]:
    """``[steps, G]``: at step s, position p holds its commit step once committed (s >= commit step), else NaN."""
    nan = float("nan")
    return [[float(c) if 0 <= c <= s else nan for c in commit_step] for s in range(steps)]


def _trace_figure(plt: Any, panels: list[tuple[str, dict]], spec: dict, folder: Path) -> Path:
    """One panel per decoding setting: answer positions x steps, each token coloured by the step that
    committed it, its text under the column."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 0.28 * len(panels[0][1]["tokens"])), 2.2 * len(panels)),
                             squeeze=False)
    for ax, (name, trace) in zip(axes[:, 0], panels):
        image = ax.imshow(trace_grid(trace["commit_step"], max(trace["steps"], 1)), aspect="auto", cmap="viridis",
                          interpolation="nearest", origin="upper")
        ax.set_xticks(range(len(trace["tokens"])))
        ax.set_xticklabels([t.strip() or "␣" for t in trace["tokens"]], rotation=90, fontsize=6)
        ax.set_ylabel("step")
        ax.set_title(f"{spec['axis']}={name}: {trace['text']!r}", fontsize=8)
        fig.colorbar(image, ax=ax, label="committed at step")
    fig.tight_layout()
    path = folder / "denoising_traces.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y), in order of x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _pareto_plot(plt: Any, rows: list[dict], metric: str, x_key: str, x_label: str, folder: Path) -> Path:
    """Every cell as a point with its 95 % bootstrap error bar; the frontier drawn and labelled."""
    cells = [r for r in rows if r.get(x_key) is not None and metric in r["metrics"]]
    points = [(float(r[x_key]), float(r["metrics"][metric])) for r in cells]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row, (x, y) in zip(cells, points):
        scores = row.get("per_sample", {}).get(metric)
        if scores:
            interval = mean_interval(scores)
            ax.errorbar(x, y, yerr=[[y - interval.low], [interval.high - y]], fmt="o", color="#4c72b0",
                        ecolor="#9bb0d3", capsize=2, markersize=4)
        else:
            ax.plot(x, y, "o", color="#4c72b0", markersize=4)
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "-", color="#c44e52", label="Pareto frontier")
    for i in front:
        ax.annotate(cells[i]["cell"], points[i], fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(x_label)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {x_label}\nevery cell, 95 % bootstrap intervals", fontsize=10)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = folder / f"pareto_{'latency' if x_key.startswith('latency') else 'nfe'}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _groups(rows: list[dict], axis: str) -> list[list[dict]]:
    keys = dict.fromkeys(r["axes"].get(axis) for r in rows)
    return [[r for r in rows if r["axes"].get(axis) == k] for k in keys]


def write_report(rows: list[dict[str, Any]], failed: list[dict[str, Any]], folder: Path, name: str,
                 report: Any, wall_time_s: float | None, cells_run: int | None = None) -> Path:
    """``report.md`` (+ plots) from the rows; ``report`` is the matrix's ``ReportSpec``."""
    header, body = summary_rows(rows, report.metric, intervals=True)
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
    lines += ["## Findings", "",
              "Verdicts from paired bootstrap 95 % intervals over the evaluation questions (difference of the "
              "compared cells' mean scores; `dvlm/bench/stats.py`).", "",
              "| claim | verdict | difference [95 % interval] | evidence |", "|---|---|---|---|"]
    for item in found:
        verdict = item["verdict"] or "not tested (cells or per-question scores missing)"
        intervals = "<br>".join(f"{k}: {'–' if v is None else v}" for k, v in item["intervals"].items())
        evidence = ", ".join(f"{k} = {_fmt(v)}" for k, v in item["evidence"].items())
        lines.append(f"| {item['claim']} ({item['metric']}) | **{verdict}** | {intervals} | {evidence} |")
    metric = report.metric or (quality_metrics(rows) or [None])[0]
    if report.plots.get("pareto") and metric:
        lines += ["", "## Pareto frontier", "", f"Cells no other cell beats on both {metric} and the cost axis:", ""]
        for x_key, label in (("latency_s_per_sample", "latency"), ("nfe", "NFE")):
            lines.append(f"- {label}: " + " → ".join(f"`{c}`" for c in frontier_cells(rows, metric, x_key)))
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
