"""AUP (d3LLM) and the report's "each value against a reference cell" claim."""

import math
import random

import pytest

from dvlm.bench.aup import aup
from dvlm.bench.report import findings, frontier_cells, row_aup, summary_rows


def test_aup_single_point_and_curve():
    assert aup([(2.0, 80.0)], y_max=80.0) == 160.0
    # sorted by rho; 70 < 80 - 5 is dropped; trapezoid 0.5 * (3 - 1) * (78 W(78) + 80 W(80)), W(80) = 1
    w78 = math.exp(-3 * (1 - 78 / 80))
    assert aup([(3.0, 78.0), (1.0, 80.0), (4.0, 70.0)], y_max=80.0) == pytest.approx(80 + (78 * w78 + 80))
    with pytest.raises(ValueError):
        aup([(0.0, 50.0)], y_max=50.0)


def scores(p: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < p) for _ in range(n)]


def cell(decoding, values, latency, tpf, kv, task="a"):
    return {"cell": f"decoding={decoding},task={task}", "axes": {"decoding": decoding, "task": task},
            "metrics": {"t/em": sum(values) / len(values)}, "per_sample": {"t/em": values}, "nfe": 10 / tpf,
            "tokens_per_forward": tpf, "latency_s_per_sample": latency, "kv_rows_recomputed": kv, "status": "ok"}


def test_versus_reference_decides_each_value_on_paired_questions():
    exact = scores(0.8, 300, 1)
    broken = [0.0 if i % 2 else s for i, s in enumerate(exact)]
    rows = [cell("exact", exact, 1.0, 1.0, 100), cell("fast", exact, 0.25, 4.0, 40),
            cell("broken", broken, 0.1, 8.0, 10)]
    claim = {"metric": "t/em", "versus": {"axis": "decoding", "reference": "exact", "max_cost": 0.05}}
    fast, bad = findings(rows, claim)
    assert fast["verdict"] == "held" and fast["evidence"]["speedup"] == pytest.approx(4.0)
    assert fast["evidence"]["K/V rows ratio"] == pytest.approx(0.4)
    assert bad["verdict"] == "refuted" and bad["intervals"]["quality cost (exact − broken)"].low > 0.3
    rows.append(cell("fast", exact[:10], 0.2, 4.0, 40, task="b"))  # no reference cell for task b: not paired
    assert findings(rows, claim)[0]["verdict"] == "held"


def test_summary_has_kv_rows_and_aup_and_the_frontier_is_named():
    rows = [cell("exact", [1.0, 0.0], 1.0, 1.0, 100), cell("fast", [1.0, 0.0], 0.25, 4.0, 40),
            cell("slow", [0.0, 0.0], 2.0, 0.5, 200)]
    header, body = summary_rows(rows, "t/em")
    assert header[-4:] == ["K/V rows", "latency s", "speedup", "AUP (t/em)"]
    assert body[1][-1] == "200.0" and body[1][-4] == "40" and row_aup(rows[2], "t/em") == 0.0
    assert frontier_cells(rows, "t/em", "latency_s_per_sample") == ["decoding=fast,task=a"]


def test_a_copied_training_folder_is_found_where_it_is_now(tmp_path):
    """done.json records paths as seen from the training run's working directory; after a copy (the decoding
    zoo reuses the quickstart's models) they are found inside the folder's new place."""
    from dvlm.bench.runner import moved_into

    folder = tmp_path / "zoo" / "train" / "c3688134662f5310"
    (folder / "checkpoints" / "step-002000").mkdir(parents=True)
    recorded = "runs/quickstart/train/c3688134662f5310/checkpoints/step-002000"
    assert moved_into(recorded, folder) == str(folder / "checkpoints" / "step-002000")
    assert moved_into(str(tmp_path), folder) == str(tmp_path)  # a path that exists stays as it is
    assert moved_into("elsewhere/data", folder) == "elsewhere/data"  # not inside a training folder: untouched
