"""The lmms-eval model under several processes: the real ``accelerate launch`` and ``torchrun`` on CPU (gloo)
against the single-process run of the same documents (``cli_run``: 7 documents per task, batches of 3, so
the two ranks get 4 and 3 documents and lmms-eval pads the second one with a clone)."""

import socket
import sys

import pytest

from tests.eval.conftest import LIMIT, run_lmms_eval

pytestmark = pytest.mark.slow


def free_port() -> int:
    """A port for the process group's rendezvous (the launchers' default, 29500, may be taken by another run)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
"""``accelerate launch --num_processes 2``. ``--multi_gpu`` is accelerate's name for its multi-process
launcher: without GPUs and without it, accelerate starts a single process."""

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]


@pytest.fixture(scope="module")
def accelerate_run(trained_checkpoint, tmp_path_factory):
    pytest.importorskip("lmms_eval")
    pytest.importorskip("accelerate")
    launcher = [*ACCELERATE, "--main_process_port", str(free_port())]
    return run_lmms_eval(trained_checkpoint, tmp_path_factory.mktemp("lmms_accelerate"), launcher)


def by_doc(samples: list[dict]) -> dict[int, dict]:
    docs = {}
    for sample in samples:
        assert sample["doc_id"] not in docs, f"document {sample['doc_id']} answered twice"
        docs[sample["doc_id"]] = sample
    return docs


def assert_same_answers_and_metrics(run, reference, tasks):
    results, samples, _, _ = run
    ref_results, ref_samples, _, _ = reference
    for task in tasks:
        docs, ref_docs = by_doc(samples[task]), by_doc(ref_samples[task])
        assert sorted(docs) == list(range(LIMIT)), task  # every document exactly once, none lost to the split
        for doc_id, sample in docs.items():
            assert sample["filtered_resps"] == ref_docs[doc_id]["filtered_resps"], (task, doc_id)
        for metric, value in ref_results["results"][task].items():
            if "stderr" in metric and isinstance(value, float):
                # the evaluator sums the per-document values in gather order (rank 0's, then rank 1's)
                assert results["results"][task][metric] == pytest.approx(value, rel=1e-12), (task, metric)
            else:
                assert results["results"][task][metric] == value, (task, metric)
        assert results["n-samples"][task] == ref_results["n-samples"][task]


def test_accelerate_two_processes_answer_every_request_once_like_one_process(accelerate_run, cli_run):
    results, samples, summary, log = accelerate_run
    assert "number of requests on this rank: 4" in log and "number of requests on this rank: 3" in log  # split
    assert log.count("evaluating on CPU") == 1 and log.count("dvlm: 2 process(es)") == 1  # said once, by rank 0
    assert_same_answers_and_metrics(accelerate_run, cli_run, ["dvlm_shapes_vqa", "dvlm_shapes_mc",
                                                              "dvlm_shapes_caption"])
    assert results["results"]["dvlm_shapes_vqa"]["exact_match,none"] > 0  # the colour questions are right


def test_accelerate_run_summary_counts_both_ranks(accelerate_run, cli_run):
    results, samples, summary, _ = accelerate_run
    assert summary["world_size"] == 2 and summary["devices"] == ["cpu", "cpu"] and summary["device"] == "cpu"
    assert summary["results_file"].endswith("_results.json") and summary["scores"] == results["results"]
    tasks = summary["tasks"]
    assert {task: stats["samples"] for task, stats in tasks.items()} == {
        "dvlm_shapes_vqa": LIMIT, "dvlm_shapes_mc": LIMIT, "dvlm_shapes_caption": LIMIT}
    choices = sum(len(sample["filtered_resps"]) for sample in samples["dvlm_shapes_mc"])  # one request each
    assert tasks["dvlm_shapes_mc"]["requests"] == choices > LIMIT
    assert tasks["dvlm_shapes_vqa"]["nfe_mean"] == 8  # steps=8, llada-reference does not stop early
    assert tasks["dvlm_shapes_mc"]["nfe_mean"] == 1 and tasks["dvlm_shapes_mc"]["tokens_per_forward_mean"] is None
    assert 0 < tasks["dvlm_shapes_vqa"]["tokens_per_forward_mean"] <= 1
    assert summary["samples"] == 3 * LIMIT and summary["samples_per_s"] > 0
    _, _, single, _ = cli_run
    assert single["world_size"] == 1 and single["tasks"]["dvlm_shapes_vqa"]["nfe_mean"] == 8


def test_torchrun_two_processes_match_one_process(trained_checkpoint, tmp_path, cli_run):
    pytest.importorskip("lmms_eval")
    launcher = [*TORCHRUN, "--master-port", str(free_port())]
    run = run_lmms_eval(trained_checkpoint, tmp_path, launcher, tasks="dvlm_shapes_vqa")
    assert_same_answers_and_metrics(run, cli_run, ["dvlm_shapes_vqa"])
    assert run[2]["world_size"] == 2
