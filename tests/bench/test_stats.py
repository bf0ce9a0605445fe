"""Bootstrap verdicts on constructed data: a clear difference is held or refuted, none is inconclusive."""

import random

import pytest

from dvlm.bench.report import findings, pareto_front
from dvlm.bench.stats import at_least, at_most, mean_interval, paired_difference
from dvlm.plugins.tasks import metrics


def scores(p: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < p) for _ in range(n)]


def test_a_clear_difference_is_held_and_its_reverse_refuted():
    good, bad = scores(0.9, 300, 1), scores(0.4, 300, 2)
    interval = paired_difference(good, bad)
    assert interval.low > 0.35 and interval.high < 0.65 and interval.low < interval.estimate < interval.high
    assert at_least(interval) == "held"
    assert at_least(paired_difference(bad, good)) == "refuted"


def test_no_difference_is_inconclusive():
    same = scores(0.6, 200, 3)
    noisy = [1.0 - s if i % 7 == 0 else s for i, s in enumerate(same)]  # a few answers flip both ways
    assert at_least(paired_difference(same, same)) == "held"  # identical: the interval is the single point 0
    interval = paired_difference(noisy, same)
    assert interval.low < 0 < interval.high
    assert at_least(interval) == "inconclusive at this sample size"


def test_the_margin_and_the_cost_bound_move_the_verdict():
    a, b = scores(0.70, 400, 4), scores(0.72, 400, 4)
    interval = paired_difference(a, b)  # a small paired loss
    assert at_least(interval, margin=0.2) == "held"
    assert at_most(paired_difference(scores(0.9, 400, 5), scores(0.3, 400, 6)), 0.05) == "refuted"
    assert at_most(paired_difference(b, b), 0.05) == "held"


def test_the_interval_is_reproducible_and_rejects_unpaired_input():
    a, b = scores(0.5, 50, 7), scores(0.5, 50, 8)
    assert paired_difference(a, b) == paired_difference(a, b)
    assert mean_interval([1.0, 1.0, 1.0]).estimate == 1.0
    with pytest.raises(ValueError):
        paired_difference([1.0, 0.0], [1.0])


def row(axes, per_question, latency=0.1, nfe=8.0, tpf=1.0, metric="t/em"):
    return {"axes": axes, "cell": ",".join(f"{k}={v}" for k, v in axes.items()), "status": "ok",
            "metrics": {metric: sum(per_question) / len(per_question)}, "per_sample": {metric: per_question},
            "latency_s_per_sample": latency, "nfe": nfe, "tokens_per_forward": tpf}


def test_findings_decide_each_claim_from_per_question_scores():
    strong, weak = scores(0.95, 300, 9), scores(0.3, 300, 10)
    rows = [row({"masking": "comp", "cache": "none"}, strong, latency=1.0),
            row({"masking": "comp", "cache": "prefix"}, strong, latency=0.2),
            row({"masking": "unif", "cache": "none"}, weak, latency=1.0),
            row({"masking": "unif", "cache": "prefix"}, weak, latency=0.2)]
    claims = {"metric": "t/em",
              "masking": {"axis": "masking", "order": {"complementary": "comp", "uniform": "unif"}},
              "cache": {"axis": "cache", "cached": "prefix", "uncached": "none", "min_speedup": 1.5, "max_cost": 0.05}}
    masking, cache = findings(rows, claims)
    assert masking["verdict"] == "held" and masking["intervals"]["complementary − uniform"].low > 0.5
    assert cache["verdict"] == "held" and cache["evidence"]["speedup"] == pytest.approx(5.0)
    flipped = {**claims, "masking": {"axis": "masking", "order": {"uniform": "unif", "complementary": "comp"}}}
    assert findings(rows, flipped)[0]["verdict"] == "refuted"
    slow_cache = [{**r, "latency_s_per_sample": 1.0} for r in rows]
    assert findings(slow_cache, claims)[1]["verdict"] == "refuted"  # no speedup


def test_a_claim_without_per_question_scores_is_not_tested():
    rows = [row({"masking": "comp"}, [1.0]), row({"masking": "unif"}, [0.0])]
    for r in rows:
        r["per_sample"] = {}
    (masking,) = findings(rows, {"metric": "t/em",
                                 "masking": {"axis": "masking", "order": {"c": "comp", "u": "unif"}}})
    assert masking["verdict"] is None


def test_threshold_claim_needs_more_tokens_per_forward_and_equal_quality():
    same = scores(0.8, 200, 11)
    rows = [row({"decoding": "thr"}, same, tpf=3.0), row({"decoding": "full"}, same, tpf=1.0)]
    claim = {"metric": "t/em", "threshold": {"axis": "decoding", "fast": "thr", "exact": "full", "max_cost": 0.05}}
    (found,) = findings(rows, claim)
    assert found["verdict"] == "held" and found["evidence"]["tokens/forward ratio"] == pytest.approx(3.0)
    rows[0]["per_sample"]["t/em"] = scores(0.2, 200, 12)
    assert findings(rows, claim)[0]["verdict"] == "refuted"


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 0.5), (2.0, 0.9), (1.5, 0.4), (3.0, 0.9), (0.5, 0.1)]
    assert pareto_front(points) == [4, 0, 1]


def test_per_sample_metrics_average_to_the_corpus_metric():
    preds, refs = ["a red square", "a blue circle", "two"], [["a red square"], ["a green circle"], ["three"]]
    assert metrics.exact_match(preds, refs) == [1.0, 0.0, 0.0]
    per_sample = metrics.cider(preds, refs)
    from pycocoevalcap.cider.cider import Cider

    corpus, _ = Cider().compute_score({i: [metrics.normalize(r) for r in rs] for i, rs in enumerate(refs)},
                                      {i: [metrics.normalize(p)] for i, p in enumerate(preds)})
    assert sum(per_sample) / 3 == pytest.approx(corpus) and per_sample[0] > per_sample[1] > per_sample[2]


def test_infill_claim_needs_the_constraint_kept_and_no_quality_cost():
    kept, good = [1.0] * 100, scores(0.9, 100, 13)
    rows = [{"axes": {}, "metrics": {}, "per_sample": {"i/constraint": kept, "i/cider": good, "c/cider": good}}]
    claim = {"infill": {"constraint": "i/constraint", "constrained": "i/cider", "free": "c/cider"}}
    (found,) = findings(rows, claim)
    assert found["verdict"] == "held" and found["metric"] == "i/cider"
    rows[0]["per_sample"]["i/constraint"] = scores(0.5, 100, 14)  # half the answers lost the fixed word
    assert findings(rows, claim)[0]["verdict"] == "refuted"
