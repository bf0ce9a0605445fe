"""The lmms-eval model's setup, without launching processes: ``--model_args`` errors, where a process runs
(device, dtype, rank), the run summary's arithmetic and lock hash, batch size and lmms-eval's padding
requests inside the real model class."""


import pytest

from dvlm.core.errors import EvalError
from dvlm.eval.model_args import ModelArgs, parse_model_args
from dvlm.eval.placement import place
from dvlm.eval.run_summary import RunStats, merge

# -- --model_args ---------------------------------------------------------------------------------------------


def test_model_args_defaults_and_lmms_eval_string_values():
    args = parse_model_args({"pretrained": "/ckpt", "batch_size": "4", "max_batch_size": 64, "device": "CUDA"})
    assert args == ModelArgs(pretrained="/ckpt", batch_size=4, device="cuda")
    assert (args.sampler, args.dtype, args.mc_num, args.mc_batch_size, args.seed) == ("lavida", "auto", 128, 16, 0)


@pytest.mark.parametrize("given, field, accepted", [
    ({"device": "tpu"}, "device", "auto, cpu, cuda, cuda:N"),
    ({"dtype": "float33"}, "dtype", "auto, float32, bfloat16, float16 (default auto). Did you mean 'float32'?"),
    ({"batch_size": "auto"}, "batch_size", "a positive integer"),
    ({"batch_size": 0}, "batch_size", "a positive integer"),
    ({"mc_num": 1.5}, "mc_num", "a positive integer"),
    ({"mc_num": 8, "mc_batch_size": 3}, "mc_batch_size", "dividing mc_num"),
    ({"seed": True}, "seed", "an integer"),
])
def test_a_bad_value_names_the_field_and_what_it_accepts(given, field, accepted):
    with pytest.raises(EvalError) as caught:
        parse_model_args({"pretrained": "/ckpt", **given})
    message = str(caught.value)
    assert message.startswith(f"--model_args {field}=") and accepted in message


def test_an_unknown_or_missing_field_lists_the_fields():
    with pytest.raises(EvalError, match=r"takes no 'dtpye'\. Did you mean 'dtype'\? It takes: pretrained .*"
                                        r"sampler .*device .*dtype .*batch_size .*mc_num .*mc_batch_size .*seed"):
        parse_model_args({"pretrained": "/ckpt", "dtpye": "bfloat16"})
    with pytest.raises(EvalError, match="pretrained is required"):
        parse_model_args({"sampler": "lavida"})


# -- placement ------------------------------------------------------------------------------------------------


def test_auto_is_cpu_without_gpus_said_once_and_keeps_the_stored_dtype():
    alone = place("auto", "auto", rank=0, world_size=1, local_rank=0, cuda_devices=0)
    assert (alone.device, alone.dtype) == ("cpu", None) and "evaluating on CPU" in alone.note
    assert place("cpu", "auto", rank=0, world_size=1, local_rank=0, cuda_devices=2).note is None


def test_auto_is_the_gpu_of_the_local_rank_in_bfloat16():
    second = place("auto", "auto", rank=5, world_size=8, local_rank=1, cuda_devices=4, launcher_device_type="cuda")
    assert (second.rank, second.world_size, second.device, second.dtype) == (5, 8, "cuda:1", "bfloat16")
    assert second.note is None
    assert place("cuda", "float32", rank=0, world_size=1, local_rank=0, cuda_devices=1).device == "cuda:0"
    assert place("cuda:1", "float16", rank=0, world_size=1, local_rank=0, cuda_devices=2).dtype == "float16"
    cpu_ranks = place("auto", "auto", rank=1, world_size=2, local_rank=1, cuda_devices=0, launcher_device_type="cpu")
    assert (cpu_ranks.device, cpu_ranks.rank) == ("cpu", 1)


@pytest.mark.parametrize("device, world_size, local_rank, gpus, launcher, expected", [
    ("cuda", 1, 0, 0, None, "torch sees no CUDA device"),
    ("cuda:1", 2, 0, 2, "cuda", "pins one GPU, but 2 processes run"),
    ("cpu", 2, 0, 2, "cuda", "CUDA_VISIBLE_DEVICES="),
    ("auto", 4, 3, 2, "cuda", "launch at most 2 processes per machine"),
    ("cuda:3", 1, 0, 2, None, r"this machine has 2 GPU\(s\) \(cuda:0..cuda:1\)"),
])
def test_a_device_the_processes_cannot_use_is_an_error_with_the_fix(device, world_size, local_rank, gpus, launcher,
                                                                     expected):
    with pytest.raises(EvalError, match=expected):
        place(device, "auto", rank=local_rank, world_size=world_size, local_rank=local_rank, cuda_devices=gpus,
              launcher_device_type=launcher)


# -- run summary ----------------------------------------------------------------------------------------------


def test_merge_adds_samples_and_takes_the_slowest_rank():
    rank0, rank1 = RunStats(), RunStats()
    for tokens in (4, 8):
        rank0.add("vqa", "generate_until", 0.5, 8, tokens / 8)
    rank1.add("vqa", "generate_until", 2.0, 4, 1.0)
    for choice in range(3):
        rank1.add("mc", "loglikelihood", 0.25, 2, new_sample=choice == 0)
    merged = merge([rank0.to_dict(), rank1.to_dict()])
    vqa, mc = merged["tasks"]["vqa"], merged["tasks"]["mc"]
    assert (vqa["samples"], vqa["requests"], vqa["seconds"], vqa["samples_per_s"]) == (3, 3, 2.0, 1.5)
    assert vqa["nfe_mean"] == pytest.approx(20 / 3) and vqa["tokens_per_forward_mean"] == pytest.approx(2.5 / 3)
    assert (mc["samples"], mc["requests"], mc["nfe_mean"], mc["tokens_per_forward_mean"]) == (1, 3, 2, None)
    assert (merged["samples"], merged["seconds"]) == (4, 2.75)  # rank 1 worked 2 + 3 x 0.25 s


# -- the model class ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lmms_model_class():
    pytest.importorskip("lmms_eval")
    from dvlm.eval.lmms_model import DvlmLmms

    return DvlmLmms


def test_the_model_raises_model_args_errors_before_loading(lmms_model_class, tmp_path):
    with pytest.raises(EvalError, match="--model_args dtype='fp8'"):
        lmms_model_class(pretrained=str(tmp_path), dtype="fp8")
    with pytest.raises(EvalError, match="--model_args sampler='lavida-cocoa'.*Did you mean 'lavida-coco'"):
        lmms_model_class(pretrained=str(tmp_path), sampler="lavida-cocoa")


def test_batches_follow_batch_size_and_padding_requests_cost_nothing(lmms_model_class, trained_checkpoint):
    """Five requests in batches of 2 (rows 2, 2, 1 through the backbone), plus lmms-eval's padding clone of
    the last one, answered with that request's answer and no further rows."""
    from lmms_eval.api.instance import Instance
    from lmms_eval.evaluator import _clone_padding_request

    from dvlm.eval.lmms_tasks.utils import doc_to_visual
    from tests.eval.test_lmms_eval import rows

    docs = rows("shapes_vqa.jsonl")[:5]
    lm = lmms_model_class(pretrained=str(trained_checkpoint), sampler="llada-reference", batch_size="2", device="auto")
    assert (lm.rank, lm.world_size, str(lm.device), lm.dtype) == (0, 1, "cpu", "float32")
    lm.task_dict = {"shapes": {"test": docs}}
    gen_kwargs = {"max_new_tokens": 8, "steps": 8, "until": ["\n"]}
    requests = [Instance("generate_until", (doc["question"], gen_kwargs, doc_to_visual, i, "shapes", "test"), idx=0,
                         metadata={"task": "shapes", "doc_id": i, "repeats": 1}) for i, doc in enumerate(docs)]
    requests.append(_clone_padding_request(requests[-1]))
    rows_per_forward = []
    hook = lm.model.backbone.register_forward_pre_hook(
        lambda module, args, kwargs: rows_per_forward.append(next(t for t in [*args, *kwargs.values()]
                                                                  if hasattr(t, "shape")).shape[0]),
        with_kwargs=True)
    answers = lm.generate_until(requests)
    hook.remove()
    assert len(answers) == 6 and answers[5] is answers[4]
    assert sorted(set(rows_per_forward)) == [1, 2] and rows_per_forward.count(1) == 8  # one batch of 1, 8 steps
    assert len(rows_per_forward) == 3 * 8
    lm.clean()
    assert lm.summary["tasks"]["shapes"]["samples"] == 5 and lm.summary["world_size"] == 1


def test_corpus_cider_does_not_depend_on_the_order_ranks_gather_items():
    """A 2-process run hands the aggregation rank 0's items, then rank 1's: the score must equal the
    1-process one to the last bit (without the canonical order, ~1 in 5 orders differ)."""
    import importlib
    import json
    import random

    from dvlm.eval import TASKS_DIR

    utils = importlib.import_module("dvlm.eval.lmms_tasks.utils")
    docs = [json.loads(line) for line in (TASKS_DIR / "data" / "shapes_caption.jsonl").read_text().splitlines()]
    items = [utils.caption_results(doc, [doc["caption"] if i % 3 else doc["caption"].split(" on ")[0]])["cider"]
             for i, doc in enumerate(docs)]
    reference = utils.cider_aggregate(items)
    assert reference > 0
    for seed in range(40):
        shuffled = random.Random(seed).sample(items, len(items))
        assert utils.cider_aggregate(shuffled) == reference


@pytest.mark.gpu
def test_on_a_gpu_the_defaults_are_cuda_and_bfloat16_and_batches_keep_the_answers(lmms_model_class,
                                                                                   trained_checkpoint):
    """device=auto, dtype=auto on a CUDA machine: cuda:0 in bfloat16; batch 4 answers equal batch 1 ones
    (what makes a multi-GPU run equal to a one-GPU run: its ranks batch other documents together)."""
    import torch
    from lmms_eval.api.instance import Instance

    from dvlm.eval.lmms_tasks.utils import doc_to_visual
    from tests.eval.test_lmms_eval import rows

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    docs = rows("shapes_vqa.jsonl")[:8]
    gen_kwargs = {"max_new_tokens": 8, "steps": 8, "until": ["\n"]}
    answers = {}
    for batch_size in (1, 4):
        lm = lmms_model_class(pretrained=str(trained_checkpoint), sampler="llada-reference", batch_size=batch_size)
        assert (str(lm.device), lm.dtype) == ("cuda:0", "bfloat16")
        lm.task_dict = {"shapes": {"test": docs}}
        requests = [Instance("generate_until", (d["question"], gen_kwargs, doc_to_visual, i, "shapes", "test"), idx=0,
                             metadata={"task": "shapes", "doc_id": i, "repeats": 1}) for i, d in enumerate(docs)]
        answers[batch_size] = [a.text for a in lm.generate_until(requests)]
    assert answers[1] == answers[4]
