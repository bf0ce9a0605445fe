"""dvlm as an lmms-eval model (``--model dvlm``): generation with dvlm samplers, likelihood with ``dvlm.score``.

    python -m lmms_eval --model dvlm --model_args pretrained=DIR,sampler=lavida \\
        --tasks dvlm_shapes_vqa --include_path "$(python -m dvlm.eval)" --batch_size 8 \\
        --gen_kwargs steps=16,cache=prefix,schedule=shift,schedule.alpha=0.33
    accelerate launch --num_processes 8 -m lmms_eval --model dvlm ...    # one process per GPU
    torchrun --nproc-per-node 8 -m lmms_eval --model dvlm ...            # the same, launched by torch

(Without GPUs, ``accelerate launch --num_processes N`` silently starts *one* process: add ``--multi_gpu``,
accelerate's name for its multi-process launcher, which then runs N CPU processes over gloo.)

``--model_args`` (``dvlm.eval.model_args``): ``pretrained`` (a checkpoint folder in any layout
``dvlm.load_pretrained`` reads), ``sampler`` (preset name or sampler spec file; default ``lavida``),
``device`` (``auto``: CUDA when available, else CPU, said once in the log), ``dtype`` (``auto``: bfloat16
on a GPU, the stored dtype on CPU), and for likelihood ``mc_num`` (default 128), ``mc_batch_size`` (16) and
``seed`` (0). ``--batch_size`` is the generation batch. ``--gen_kwargs`` and the tasks'
``generation_kwargs`` map onto sampler fields (``dvlm.eval.gen_kwargs``).

Several processes: lmms-eval's evaluator gives each rank its share of the documents (``RANK`` /
``WORLD_SIZE``) and gathers the answers on rank 0, which writes the one results file. The model reads its
rank from the launcher's process group (``process_placement``), sits on the GPU of its local rank
(``dvlm.eval.placement``) and answers its share; the evaluator's padding requests (clones that even out the
ranks' counts, dropped afterwards) get the answer of the request they clone, without compute. Answers do not
depend on the split, because batching does not change them (on GPUs this rests on bf16 batch invariance).

``generate_until`` groups the requests by task and generation settings, runs each group in batches of
``--batch_size`` (ragged prompts are left-padded) and returns the answers in request order.
``loglikelihood`` scores every continuation of one context in one ``dvlm.score`` call (the image is encoded
once) and returns, as lmms-eval's own models do, a *loss*: the Monte-Carlo bound on
``-log p(continuation | context)``, because lmms-eval's ``multiple_choice`` picks the choice with the
*smallest* value (``np.argmin``). The greedy flag is always False (LLaDA's authors advise against the greedy
check). lmms-eval 0.7.x turns every ``(value, greedy)`` pair into a string (``unwrap_generation_output``);
when that happens the pair is handed over inside a ``GenerationResult``, which that function passes through.

The run summary (``dvlm.eval.run_summary``: samples/s, NFE and tokens per forward per task, devices, world
size, lock hash) is merged over the ranks when the evaluator calls ``clean()``, and written by rank 0 as
``<date>_dvlm_summary.json`` beside lmms-eval's ``<date>_results.json``, with the run's scores copied in.
lmms-eval 0.7 gives a model no hook when it saves results, so the model wraps
``EvaluationTracker.save_results_aggregated`` once (``_write_summary_beside_results``). Through the Python API
(``lmms_eval.evaluator.simple_evaluate(model=DvlmLmms(...), ...)``) the summary is the model's ``summary``.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts, unwrap_generation_output
from lmms_eval.api.model import lmms
from lmms_eval.loggers.evaluation_tracker import EvaluationTracker
from loguru import logger as eval_logger
from tqdm import tqdm

from dvlm.core.errors import DvlmError, EvalError
from dvlm.eval.gen_kwargs import cut_at_stop, sampler_for
from dvlm.eval.model_args import parse_model_args
from dvlm.eval.placement import Placement, place
from dvlm.eval.run_summary import RunStats, summary

SCORES_BECOME_STRINGS = isinstance(unwrap_generation_output((0.0, False))[0], str)
"""lmms-eval 0.7.x's bug: a ``(float, bool)`` output comes back as the string ``"(0.0, False)"``."""

PADDING = "__padding_only__"
"""The metadata flag of lmms-eval's padding requests (``evaluator._clone_padding_request``)."""

_PENDING_SUMMARY: dict[str, Any] | None = None
"""Rank 0's merged summary of the run that is ending, until lmms-eval saves its results beside it."""


def load_model(pretrained: str, device: str, dtype: str | None):
    """A checkpoint folder or hub id as a ``DiffusionVLM`` with the folder's tokenizer and chat template."""
    import dvlm

    return dvlm.load_pretrained(pretrained, dtype=dtype, device=device).eval()


def process_placement(device: str, dtype: str) -> Placement:
    """This process's rank, device and dtype, read from the launcher's process group as lmms-eval's evaluator
    reads it (``accelerate launch`` and ``torchrun`` start it before the model is built; its backend says
    the device type: NCCL for GPUs, gloo for CPU), or from ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` when no
    group exists yet (the evaluator starts one later).

    Not from ``accelerate.Accelerator`` as lmms-eval's GPU models do: on CPU its state reports one process
    even inside a two-process gloo group, which would put both ranks on rank 0's share."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        launcher = {"nccl": "cuda", "gloo": "cpu"}.get(str(dist.get_backend()))
    else:
        rank, world_size, launcher = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), None
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    return place(device, dtype, rank=rank, world_size=world_size, local_rank=local_rank,
                 cuda_devices=torch.cuda.device_count(), launcher_device_type=launcher)


class DvlmLmms(lmms):
    """A dvlm checkpoint behind lmms-eval's *simple* model interface."""

    is_simple = True

    def __init__(self, **model_args: Any) -> None:
        super().__init__()
        args = parse_model_args(model_args)
        try:
            sampler_for(args.sampler, {})
        except DvlmError as err:
            raise EvalError(f"--model_args sampler={args.sampler!r}: {err}") from None
        placement = process_placement(args.device, args.dtype)
        self._rank, self._world_size = placement.rank, placement.world_size
        self._device = torch.device(placement.device)
        if self._world_size > 1:
            atexit.register(leave_process_group)
        if placement.note and self._rank == 0:
            eval_logger.info(placement.note)
        if self._device.type == "cuda":
            torch.cuda.set_device(self._device)
        self.model = load_model(args.pretrained, placement.device, placement.dtype)
        self.options = args
        self.dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        self.batch_size = args.batch_size
        self.stats = RunStats()
        self.summary: dict[str, Any] | None = None
        _write_summary_beside_results()
        if self._rank == 0:
            eval_logger.info(f"dvlm: {self._world_size} process(es), rank 0 on {self._device}, "
                             f"dtype {self.dtype}, batch size {self.batch_size}")

    @property
    def device(self) -> torch.device:
        """This process's device (the evaluator puts its gather tensors there)."""
        return self._device

    def _visuals(self, doc_to_visual, task: str, split: str, doc_id: int) -> list:
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual is not None else None
        return [v for v in (visuals or []) if v is not None]

    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        import dvlm

        work, copies = _split_padding(requests)
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i in work:
            groups[(requests[i].task_name, json.dumps(requests[i].args[1], sort_keys=True, default=str))].append(i)
        answers: list[GenerationResult | None] = [None] * len(requests)
        progress = tqdm(total=len(work), desc="dvlm generate", disable=self.rank != 0)
        for (task, _), indices in groups.items():
            params, stops = sampler_for(self.options.sampler, requests[indices[0]].args[1])
            for start in range(0, len(indices), self.batch_size):
                began = time.perf_counter()
                chunk = indices[start : start + self.batch_size]
                prompts, images = [], []
                for i in chunk:
                    context, _, doc_to_visual, doc_id, task_name, split = requests[i].args
                    prompts.append(context)
                    images.append(self._visuals(doc_to_visual, task_name, split, doc_id))
                result = dvlm.generate(self.model, prompt=prompts, images=images, sampler=params)
                share = (time.perf_counter() - began) / len(chunk)
                nfe = max(result.nfe, 1)
                for row, i in enumerate(chunk):
                    answers[i] = GenerationResult(cut_at_stop(result.text[row], stops),
                                                  TokenCounts(output_tokens=result.answer_lengths[row]))
                    self.stats.add(task, "generate_until", share, result.nfe, result.answer_lengths[row] / nfe)
                progress.update(len(chunk))
        progress.close()
        for i, source in copies.items():
            answers[i] = answers[source]
        return answers

    def loglikelihood(self, requests: list[Instance]) -> list[Any]:
        import dvlm

        work, copies = _split_padding(requests)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i in work:
            context, _, _, doc_id, task, split = requests[i].args
            groups[(task, split, doc_id, context)].append(i)
        losses: list[Any] = [None] * len(requests)
        forwards = self.options.mc_num // min(self.options.mc_batch_size, self.options.mc_num)  # per continuation
        progress = tqdm(total=len(work), desc="dvlm score", disable=self.rank != 0)
        for (task, split, doc_id, context), indices in groups.items():
            began = time.perf_counter()
            doc = self.task_dict[task][split][doc_id]
            continuations = []
            for i in indices:
                target = requests[i].args[1]
                continuations.append(target(doc) if callable(target) else target)
            visuals = self._visuals(requests[indices[0]].args[2], task, split, doc_id)
            options = self.options
            scores = dvlm.score(self.model, context, [str(c) for c in continuations], images=visuals or None,
                                mc_num=options.mc_num, batch_size=options.mc_batch_size, seed=options.seed)
            share = (time.perf_counter() - began) / len(indices)
            for n, (i, score) in enumerate(zip(indices, scores)):
                pair = (-score, False)
                losses[i] = GenerationResult(pair) if SCORES_BECOME_STRINGS else pair
                self.stats.add(requests[i].task_name, "loglikelihood", share, forwards, new_sample=n == 0)
            progress.update(len(indices))
        progress.close()
        for i, source in copies.items():
            losses[i] = losses[source]
        return losses

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("dvlm answers single-round requests only (generate_until, loglikelihood)")

    def clean(self) -> None:
        """Called by the evaluator on every rank once all requests are answered: merge the ranks' counts into
        the run summary (a collective: every rank takes part), which rank 0 keeps for the results folder;
        then lmms-eval's own ``clean`` drops the model."""
        global _PENDING_SUMMARY
        devices = [str(self._device)]
        per_rank = [self.stats.to_dict()]
        if self._world_size > 1 and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * self._world_size
            torch.distributed.all_gather_object(gathered, (str(self._device), self.stats.to_dict()))
            devices = [device for device, _ in gathered]
            per_rank = [stats for _, stats in gathered]
        self.summary = summary(per_rank, devices=devices, dtype=self.dtype, batch_size=self.batch_size,
                               sampler=self.options.sampler, pretrained=self.options.pretrained)
        self.stats = RunStats()
        if self._rank == 0:
            _PENDING_SUMMARY = self.summary
            eval_logger.info(f"dvlm: {self.summary['samples']} requests in {self.summary['seconds']:.2f} s "
                             f"({self.summary['samples_per_s'] or 0:.2f} samples/s) on {self._world_size} process(es)")
        super().clean()  # lmms-eval's: frees the model (its memory may go to an LLM judge)


def leave_process_group() -> None:
    """Destroy the launcher's process group before the interpreter exits: a gloo group left alive is torn down by
    C++ destructors with its threads still running, which aborts the process ("terminate called without an
    active exception") after the results are written, and the launcher then reports the run as failed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _split_padding(requests: list[Instance]) -> tuple[list[int], dict[int, int]]:
    """``(indices to answer, {padding index: index of the request it clones})``. A padding request is a
    shallow copy of a real one (same ``arguments`` object), so it gets that request's answer."""
    work = [i for i, r in enumerate(requests) if not (r.metadata or {}).get(PADDING)]
    by_arguments = {id(requests[i].arguments): i for i in work}
    copies = {}
    for i, request in enumerate(requests):
        if (request.metadata or {}).get(PADDING):
            source = by_arguments.get(id(request.arguments))
            if source is None:  # not a clone of one of these requests: answer it like any other
                work.append(i)
            else:
                copies[i] = source
    return sorted(work), copies


def _write_summary_beside_results() -> None:
    """Make lmms-eval's ``EvaluationTracker.save_results_aggregated`` also write the pending run summary as
    ``<date>_dvlm_summary.json`` beside ``<date>_results.json``, with the run's scores (once per process)."""
    original = EvaluationTracker.save_results_aggregated
    if getattr(original, "dvlm_summary", False):
        return

    def save_results_aggregated(self, results: dict, samples: dict, datetime_str: str) -> None:
        global _PENDING_SUMMARY
        original(self, results=results, samples=samples, datetime_str=datetime_str)
        pending, _PENDING_SUMMARY = _PENDING_SUMMARY, None
        if pending is None or not self.output_path:
            return
        folder = Path(self.output_path) / self.general_config_tracker.model_name_sanitized
        date_id = datetime_str.replace(":", "-")
        document = {**pending, "results_file": f"{date_id}_results.json", "scores": results.get("results", {})}
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{date_id}_dvlm_summary.json"
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")
        eval_logger.info(f"dvlm: run summary written to {path}")

    save_results_aggregated.dvlm_summary = True
    EvaluationTracker.save_results_aggregated = save_results_aggregated
