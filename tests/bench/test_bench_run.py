"""``dvlm bench`` end to end on a tiny text-only matrix."""

import json
import re
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from dvlm.bench.results import ROW_KEYS, ResultsStore
from dvlm.bench.runner import run_matrix
from dvlm.core.errors import SpecError
from dvlm.core.specs import parse_spec
from tests.bench.conftest import tiny_matrix
from tests.training.conftest import write_text_task


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """The two-cell matrix run once for the module: (matrix, results folder, rows)."""
    root = tmp_path_factory.mktemp("bench")
    matrix = parse_spec(tiny_matrix(write_text_task(root / "data", n=32)))
    rows = run_matrix(matrix, root / "out", progress=False)
    return matrix, root / "out", rows


def test_cells_sharing_a_training_spec_train_once_and_rows_follow_the_schema(base_run):
    _, out, rows = base_run
    assert [r["status"] for r in rows] == ["ok", "ok"], [r["error"] for r in rows]
    assert len(list((out / "train").iterdir())) == 1  # one training spec -> one checkpoint
    for row in rows:
        assert tuple(row)[: len(ROW_KEYS)] == ROW_KEYS
        assert 0.0 <= row["metrics"]["llava_json/exact_match"] <= 1.0
        per_question = row["per_sample"]["llava_json/exact_match"]  # paired across cells for the intervals
        assert len(per_question) == 8 and sum(per_question) / 8 == row["metrics"]["llava_json/exact_match"]
        trace = row["traces"]["llava_json"]  # the first sample's denoising, for the report's figure
        assert len(trace["tokens"]) == len(trace["commit_step"]) == 4
        assert all(-1 <= s < trace["steps"] for s in trace["commit_step"]) and max(trace["commit_step"]) >= 0
        assert row["nfe"] > 0 and row["tokens_per_forward"] > 0 and row["latency_s_per_sample"] > 0
        assert row["seeds"] == {"train": 0, "data": 0, "eval": 0}
        assert row["spec"]["eval"]["sampler"]["kind"] == "fixed_count"  # the preset was resolved into the spec
    assert {r["axes"]["cache"] for r in rows} == {"none", "prefix"}
    assert rows[0]["spec_hash"] != rows[1]["spec_hash"]


def test_training_is_cached_by_spec_hash_across_runs_and_matrices(tmp_path, base_run):
    matrix, shared, _ = base_run
    out = tmp_path / "out"
    shutil.copytree(shared, out)  # the module's run stays as it was for the other tests
    text_data = matrix.base["train"]["data"]["root"]
    marker = next((out / "train").iterdir()) / "done.json"
    stamp = marker.stat().st_mtime_ns
    bigger = tiny_matrix(text_data, axes={
        "cache": {"none": {"eval.sampler.cache": {"kind": "none"}}, "prefix": {"eval.sampler.cache": {"kind": "prefix"}}},
        "nfe": {"50%": {"eval.sampler.step_ratio": 0.5}, "100%": {"eval.sampler.step_ratio": 1.0}},
    })
    rows = run_matrix(parse_spec(bigger), out, progress=False)
    assert marker.stat().st_mtime_ns == stamp  # reused, not retrained
    assert len(list((out / "train").iterdir())) == 1
    assert len({r["spec_hash"] for r in rows}) == len(rows)


def test_a_second_run_skips_completed_cells(tmp_path, base_run):
    matrix, out, first = base_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    again = run_matrix(matrix, copy, progress=False)
    assert again == first


def bench(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "dvlm", "bench", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_resume_after_a_killed_run_loses_and_duplicates_nothing(tmp_path, text_data):
    axes = {"nfe": {f"{k}": {"eval.sampler.step_ratio": k / 8} for k in range(5, 9)}}
    spec = tiny_matrix(text_data, axes=axes, limit=16)
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    proc = bench(str(path), "--out", str(out), "--no-progress", cwd=tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (out / "results.jsonl").exists() and len(ResultsStore(out).rows()) >= 1:
            break
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    interrupted = len(ResultsStore(out).open())
    assert 1 <= interrupted < 4, "the first run should have been interrupted after its first row"
    finished = bench(str(path), "--out", str(out), "--no-progress", cwd=tmp_path)
    stdout, stderr = finished.communicate(timeout=300)
    assert finished.returncode == 0, stderr
    rows = ResultsStore(out).rows()
    assert sorted(r["cell"] for r in rows) == sorted(f"nfe={k}" for k in range(5, 9))
    assert (out / "report.md").is_file() and "nfe" in (out / "report.md").read_text()


def test_axis_naming_an_unknown_field_fails_before_anything_runs(tmp_path, text_data):
    spec = tiny_matrix(text_data, axes={"t": {"hot": {"eval.sampler.temprature": 0.5}}})
    with pytest.raises(SpecError, match=r"\[cell t=hot\]: eval.sampler.temprature: Extra inputs"):
        parse_spec(spec).cells()
    assert not (tmp_path / "out").exists()


def test_axis_naming_an_unknown_kind_is_one_clear_message(tmp_path, text_data):
    spec = tiny_matrix(text_data, axes={"cache": {"x": {"eval.sampler.cache": {"kind": "prefx"}}}})
    with pytest.raises(SpecError, match=r"\[cell cache=x\]: eval.sampler.cache.*prefx"):
        parse_spec(spec).cells()


def test_empty_product_is_refused(text_data):
    spec = tiny_matrix(text_data, exclude=[{"cache": "none"}, {"cache": "prefix"}])
    with pytest.raises(SpecError, match="matrix is empty"):
        parse_spec(spec).cells()


def test_cli_refuses_a_results_folder_from_an_incompatible_version(tmp_path, text_data):
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(tiny_matrix(text_data)))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "meta.json").write_text(json.dumps({"results_version": 999}))
    proc = bench(str(path), "--out", str(tmp_path / "out"), cwd=tmp_path)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "results_version 999" in stderr and "Traceback" not in stderr


def test_ray_executor_gives_the_same_rows_as_local(tmp_path, base_run):
    pytest.importorskip("ray")
    matrix, _, local = base_run
    env = {k: os.environ.get(k) for k in ("RAY_ADDRESS",)}
    os.environ.pop("RAY_ADDRESS", None)
    try:
        remote = run_matrix(matrix, tmp_path / "ray", executor="ray", workers=2, progress=False)
    finally:
        import ray

        ray.shutdown()
        os.environ.update({k: v for k, v in env.items() if v is not None})
    key = lambda r: r["spec_hash"]  # noqa: E731
    for a, b in zip(sorted(local, key=key), sorted(remote, key=key)):
        assert (a["cell"], a["status"], a["nfe"]) == (b["cell"], b["status"], b["nfe"])
        assert {k: v for k, v in a["metrics"].items() if "time" not in k} == \
               {k: v for k, v in b["metrics"].items() if "time" not in k}


def test_report_has_verdicts_pareto_plots_and_the_denoising_trace(base_run, tmp_path):
    from dvlm.bench.report import write_report
    from dvlm.bench.spec import ReportSpec

    _, _, rows = base_run
    report = ReportSpec(metric="llava_json/exact_match",
                        claims={"cache": {"axis": "cache", "cached": "prefix", "uncached": "none"}},
                        plots={"pareto": True, "traces": {"task": "llava_json", "axis": "cache", "where": {}}})
    text = write_report(rows, [], tmp_path, "tiny", report, wall_time_s=1.0).read_text()
    assert "difference [95 % interval]" in text and "quality cost (uncached − cached)" in text
    assert any(v in text for v in ("**held**", "**refuted**", "**inconclusive at this sample size**"))
    cell = next(line for line in text.splitlines() if line.startswith("| none |"))  # a cell's quality with its interval
    assert re.search(r"\| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \|", cell), cell
    for name in ("pareto_latency.png", "pareto_nfe.png", "denoising_traces.png"):
        assert (tmp_path / name).stat().st_size > 1000 and f"({name})" in text


def test_a_second_matrix_in_the_same_folder_keeps_the_first_report(tmp_path, base_run):
    """The decoding zoo runs into the quickstart's folder to reuse its models: the first report stays, the
    second one goes into a subfolder named for its matrix."""
    from dvlm.bench.cli import bench_command

    matrix, shared, _ = base_run
    out = tmp_path / "out"
    shutil.copytree(shared, out)
    (out / "report.md").write_text("# the first matrix's report\n")
    second = tiny_matrix(matrix.base["train"]["data"]["root"],
                         axes={"decoding": {"half": {"eval.sampler.step_ratio": 0.5}}})
    path = tmp_path / "second.yaml"
    path.write_text(yaml.safe_dump({**second, "name": "second"}))
    bench_command(path, out=out, progress=False)
    assert (out / "report.md").read_text() == "# the first matrix's report\n"
    assert "decoding=half" not in (out / "report.md").read_text()
    assert "half" in (out / "second" / "report.md").read_text()
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump({**tiny_matrix(matrix.base["train"]["data"]["root"]), "name": "tiny"}))
    bench_command(first, out=out, progress=False)  # the folder's own matrix again: its report at the top
    assert "# Benchmark matrix `tiny`" in (out / "report.md").read_text() and not (out / "tiny").exists()
    assert "decoding=half" not in (out / "report.md").read_text()  # the other matrix's cells stay out of it
