import json
import multiprocessing
import os
import signal
import time

import pytest

from dvlm.bench.provenance import provenance
from dvlm.bench.results import ROW_KEYS, IncompatibleResultsError, ResultsStore, make_row


def row(i, prov):
    return make_row(spec_hash=f"h{i}", cell=f"c={i}", axes={"c": str(i)}, spec={"i": i}, status="ok",
                    provenance=prov, metrics={"accuracy": i / 10}, nfe=8, tokens_per_forward=2.0,
                    latency_s_per_sample=0.1, seeds={"train": 0}, duration_s=0.5)


@pytest.fixture(scope="module")
def prov():
    return provenance()


def test_row_schema(prov):
    r = row(1, prov)
    assert tuple(r) == ROW_KEYS
    assert isinstance(r["git_dirty"], (bool, type(None))) and r["versions"]["torch"]
    assert r["hardware"]["cpu_count"] >= 1
    json.dumps(r)  # serialisable


def test_rows_round_trip_and_done_set(tmp_path, prov):
    store = ResultsStore(tmp_path)
    assert store.open() == []
    store.extend([row(1, prov), row(2, prov)])
    assert [r["spec_hash"] for r in ResultsStore(tmp_path).open()] == ["h1", "h2"]
    assert store.done() == {"h1", "h2"}


def test_a_torn_last_line_is_dropped_and_truncated(tmp_path, prov):
    store = ResultsStore(tmp_path)
    store.open()
    store.append(row(1, prov))
    with open(store.rows_path, "ab") as handle:
        handle.write(b'{"spec_hash": "h2", "cell": "c=2", "sta')  # a kill mid-write
    rows = ResultsStore(tmp_path).open()
    assert [r["spec_hash"] for r in rows] == ["h1"]
    store.append(row(2, prov))
    assert [r["spec_hash"] for r in store.rows()] == ["h1", "h2"]


def _slow_writer(folder, n):
    store = ResultsStore(folder)
    store.open()
    prov = {"git_sha": None}
    for i in range(n):
        if str(i) in {r["cell"].split("=")[1] for r in store.rows()}:
            continue
        time.sleep(0.05)
        store.append(row(i, prov))


def test_killed_writer_then_resume_loses_and_duplicates_nothing(tmp_path):
    proc = multiprocessing.get_context("spawn").Process(target=_slow_writer, args=(tmp_path, 40))
    proc.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        if (tmp_path / "results.jsonl").exists() and len(ResultsStore(tmp_path).rows()) >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    written = len(ResultsStore(tmp_path).open())
    assert 3 <= written < 40
    _slow_writer(tmp_path, 40)  # the re-run
    hashes = [r["spec_hash"] for r in ResultsStore(tmp_path).rows()]
    assert sorted(hashes, key=lambda h: int(h[1:])) == [f"h{i}" for i in range(40)]
    assert len(hashes) == len(set(hashes))


def test_results_from_an_incompatible_version_are_refused(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"results_version": 0}))
    with pytest.raises(IncompatibleResultsError, match="results_version 0.*new --out folder"):
        ResultsStore(tmp_path).open()
