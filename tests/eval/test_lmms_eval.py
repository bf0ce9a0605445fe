"""The lmms-eval client: the real CLI offline on the shipped dvlm_shapes_* tasks, the gen_kwargs mapping, the
shipped task data, and import lightness."""

import json
import os
import subprocess
import sys
import tempfile

import pytest
from PIL import Image

import dvlm
from dvlm.core.errors import SpecError
from dvlm.eval import TASKS_DIR
from dvlm.eval.gen_kwargs import cut_at_stop, sampler_for, stop_strings
from dvlm.eval.shapes_tasks import SHIPPED, write_task_data
from tests.eval.conftest import LIMIT, ONE_THREAD


def rows(task_file):
    return [json.loads(line) for line in (TASKS_DIR / "data" / task_file).read_text().splitlines()]


# -- the CLI -------------------------------------------------------------------------------------------------


def test_cli_writes_numeric_metrics_for_generation_and_likelihood(cli_run):
    results, _, _, _ = cli_run
    metrics = results["results"]
    for task, metric in [("dvlm_shapes_vqa", "exact_match,none"), ("dvlm_shapes_mc", "acc,none"),
                         ("dvlm_shapes_mc", "acc_norm,none"), ("dvlm_shapes_caption", "cider,none")]:
        value = metrics[task][metric]
        assert isinstance(value, float) and value == value, (task, metric, value)  # a number, not NaN
    assert 0 <= metrics["dvlm_shapes_vqa"]["exact_match,none"] <= 1 and 0 <= metrics["dvlm_shapes_mc"]["acc,none"] <= 1
    assert results["n-samples"]["dvlm_shapes_vqa"]["effective"] == LIMIT
    assert "DvlmLmms" in results["config"]["model_backend"]


def test_cli_answers_are_in_request_order_and_match_dvlm_generate(cli_run, trained_checkpoint):
    """Batched (3 per batch, ragged prompts) answers equal batch-1 ``dvlm.generate`` doc by doc."""
    _, samples, _, _ = cli_run
    docs = rows("shapes_vqa.jsonl")
    model = dvlm.load_pretrained(trained_checkpoint)
    for sample in samples["dvlm_shapes_vqa"]:
        doc = docs[sample["doc_id"]]
        alone = dvlm.generate(model, prompt=doc["question"], images=[TASKS_DIR / "data" / doc["image"]],
                              sampler="llada-reference", overrides=["gen_length=8", "steps=8", "block_length=8"])
        assert sample["filtered_resps"] == alone.text[0].strip()
        assert sample["target"] == doc["answer"]
    colour = [s for s in samples["dvlm_shapes_vqa"] if docs[s["doc_id"]]["kind"] == "colour"]
    assert colour and all(s["exact_match"] == 1.0 for s in colour)  # the skill the model was trained on


def test_cli_likelihoods_are_dvlm_score_losses(cli_run, trained_checkpoint):
    """multiple_choice gets numbers (not 0.7.x's stringified pairs): -dvlm.score, one per choice, in order."""
    _, samples, _, _ = cli_run
    docs = rows("shapes_mc.jsonl")
    model = dvlm.load_pretrained(trained_checkpoint)
    for sample in samples["dvlm_shapes_mc"][:3]:
        doc = docs[sample["doc_id"]]
        expected = dvlm.score(model, doc["question"], doc["choices"], images=[TASKS_DIR / "data" / doc["image"]],
                              mc_num=4, batch_size=4)
        losses = [float(loss) for loss, _ in sample["filtered_resps"]]
        assert losses == pytest.approx([-s for s in expected], abs=1e-3)
        picked = min(range(len(losses)), key=losses.__getitem__)
        assert sample["acc"] == float(doc["choices"][picked] == doc["answer"])


# -- gen_kwargs -> sampler ------------------------------------------------------------------------------------


def test_max_new_tokens_sets_the_window_and_keeps_the_nfe_fraction():
    params, stops = sampler_for("lavida-coco", {"max_new_tokens": 16, "temperature": 0, "until": ["\n"],
                                                "do_sample": False, "num_beams": 1, "top_p": None})
    assert (params.gen_length, params.block_length, params.steps) == (16, 16, 8)  # preset: 32 tokens, 16 steps
    assert params.temperature == 0.0 and stops == ["\n"]
    reference, _ = sampler_for("llada-reference", {"max_new_tokens": 64})  # 128 tokens, blocks of 32, 128 steps
    assert (reference.gen_length, reference.block_length, reference.steps) == (64, 32, 64)
    odd, _ = sampler_for("llada-reference", {"max_new_tokens": 24})
    assert (odd.block_length, odd.steps) == (24, 24)  # the largest divisor of 24 not above 32


def test_gen_kwargs_override_sampler_fields_and_nested_ones():
    params, _ = sampler_for("llada-reference", {"max_new_tokens": 32, "steps": 8, "block_length": 16,
                                                "cache": "prefix", "schedule": "shift", "schedule__alpha": 0.5})
    assert (params.gen_length, params.steps, params.block_length) == (32, 8, 16)
    assert params.cache.kind == "prefix" and params.schedule.kind == "shift" and params.schedule.alpha == 0.5
    dotted, _ = sampler_for("lavida-coco", {"schedule.alpha": 0.25})
    assert dotted.schedule.alpha == 0.25


def test_an_unknown_gen_kwarg_is_an_error_naming_the_fields():
    with pytest.raises(SpecError, match="no field 'stpes'.*Did you mean 'steps'"):
        sampler_for("llada-reference", {"stpes": 8})


def test_stop_strings_cut_the_answer():
    assert stop_strings('["\\n", "ASSISTANT:"]') == ["\n", "ASSISTANT:"]
    assert stop_strings("\n\n") == ["\n\n"] and stop_strings(None) == []
    assert cut_at_stop(" red\nblue ASSISTANT: x", ["ASSISTANT:", "\n"]) == "red"


def test_task_functions_for_shapes_and_coco_documents():
    """The caption metric functions, reached the way a task YAML's ``!function`` reaches them."""
    import importlib

    from dvlm.plugins.tasks.metrics import cider

    utils = importlib.import_module("dvlm.eval.lmms_tasks.utils")
    shapes = utils.caption_results({"caption": "two red circles on the left"}, ["two red circles on the left"])
    coco = utils.coco_cider_results({"answer": ["A dog on a sofa.", "a dog lying on a couch"]}, ["a dog on a couch"])
    items = [shapes["cider"], coco["cider"]]
    assert coco["cider"]["references"] == ["A dog on a sofa.", "a dog lying on a couch"]
    per_item = cider([i["prediction"] for i in items], [i["references"] for i in items])
    assert utils.cider_aggregate(items) == pytest.approx(sum(per_item) / len(per_item))  # the corpus CIDEr-D
    (image,) = utils.doc_to_visual(rows("shapes_vqa.jsonl")[0])
    assert image.mode == "RGB" and image.size == (64, 64)


# -- packaging -----------------------------------------------------------------------------------------------


def test_shipped_task_data_is_the_synthetic_dataset(tmp_path):
    """The packaged data is exactly what ``write_task_data`` makes from ``dvlm data synth-shapes``."""
    write_task_data(tmp_path, SHIPPED["n"], SHIPPED["seed"], SHIPPED["split"])
    shipped = sorted(p.relative_to(TASKS_DIR / "data") for p in (TASKS_DIR / "data").rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert shipped == fresh
    for path in fresh:  # same rows, same pixels (PNG bytes may differ between zlib builds)
        if path.suffix == ".png":
            with Image.open(TASKS_DIR / "data" / path) as a, Image.open(tmp_path / path) as b:
                assert a.size == b.size and a.tobytes() == b.tobytes(), path
        else:
            assert (TASKS_DIR / "data" / path).read_text() == (tmp_path / path).read_text(), path
    mc = rows("shapes_mc.jsonl")
    assert all(row["answer"] in row["choices"] for row in mc)
    assert {p.name for p in TASKS_DIR.glob("*.yaml")} == {"dvlm_shapes_vqa.yaml", "dvlm_shapes_mc.yaml",
                                                          "dvlm_shapes_caption.yaml"}


def test_import_dvlm_and_the_entry_point_stay_light():
    """lmms-eval imports the entry point while it starts: no torch there; ``dvlm.score`` pulls in torch but
    neither lmms-eval nor the web stack."""
    code = ("import sys, dvlm, dvlm.eval, dvlm.eval.lmms_plugin; light = 'torch' not in sys.modules; dvlm.score; "
            "print(light, [m for m in ('lmms_eval', 'starlette', 'uvicorn') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=tempfile.gettempdir(), env={**os.environ, **ONE_THREAD})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "[]"]
