"""The training loop: masked-diffusion training with exact resume, on one process or under torchrun.

One optimizer step = ``global_batch_size`` examples = ``accumulation · processes`` micro-batches.
Every random draw is derived from (seed, purpose, step, micro-batch) (``determinism.py``), the data
position is the step (``dvlm.data.batching``), and checkpoints hold weights, optimiser, scheduler
and RNG state, so an interrupted run resumed from step k ends bit-identical to an uninterrupted
one, and N processes compute what one process does with N times the accumulation.

A non-finite loss or gradient norm stops the run before the update is applied, naming the step
and the last good checkpoint (which is kept).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from dvlm.core.errors import TrainingError
from dvlm.core.plugins import get_registry
from dvlm.core.specs import spec_hash
from dvlm.data.batching import ExampleOrder, collate
from dvlm.data.encode import IMAGE_SLOT, ConversationEncoder
from dvlm.data.llava import load_llava
from dvlm.train import checkpointing, distributed
from dvlm.train.determinism import generator, python_rng
from dvlm.train.evaluate import evaluate, to_device
from dvlm.train.model import TrainingModel, enable_gradient_checkpointing
from dvlm.train.optim import build_optimizer, trainable_parameters, warmup_cosine
from dvlm.train.setup import build_model, prepare_data_root, save_model_fn
from dvlm.train.spec import TrainSpec


@dataclass
class RunResult:
    """What a call to ``train`` did."""

    start_step: int
    step: int
    """The step reached (= steps completed)."""
    last_loss: float | None
    eval: dict[str, float] = field(default_factory=dict)
    """The last evaluation's metrics."""
    checkpoint: Path | None = None
    """The last checkpoint written or resumed from."""
    wall_time_s: float = 0.0


def train(spec: TrainSpec, *, resume: bool = False, stop_after: int | None = None,
          progress: bool = True, log: Any = print) -> RunResult:
    """Run (or continue, with ``resume``) the training run ``spec`` describes.

    ``stop_after``: stop after this many optimizer steps in this call, checkpointing first, as a job
    that hits its time limit would; a later ``resume`` continues exactly.
    """
    processes = distributed.start(spec.device)
    try:
        return _train(spec, processes, resume, stop_after, progress, log if processes.main else (lambda *a, **k: None))
    finally:
        distributed.stop()


def _train(spec: TrainSpec, processes: distributed.Processes, resume: bool, stop_after: int | None,
           progress: bool, log: Any) -> RunResult:
    began = time.perf_counter()
    out = Path(spec.out_dir)
    ckpt_root = out / "checkpoints"
    existing = checkpointing.checkpoint_dirs(ckpt_root)
    if existing and not resume:
        raise TrainingError(f"{out} already holds checkpoints (latest {existing[-1].name}); pass --resume to "
                            f"continue that run, or choose another out_dir")
    micro, world = spec.micro_batch_size, processes.world
    if spec.global_batch_size % (micro * world):
        raise TrainingError(f"global_batch_size {spec.global_batch_size} is not divisible by micro_batch_size "
                            f"{micro} x {world} processes; change one of them")
    accumulation = spec.global_batch_size // (micro * world)
    digest = spec_hash(spec)

    root = prepare_data_root(spec, processes)
    torch.manual_seed(spec.seed)  # identical initial weights in every process and every run
    inner = build_model(spec, processes)
    model = TrainingModel(inner)
    special = model.backbone.special_tokens
    if spec.gradient_checkpointing:
        enable_gradient_checkpointing(model.backbone)
    model.to(processes.device).float().train()  # fp32 master weights; bf16 comes from autocast
    masking = get_registry().build("masking_strategies", spec.masking)
    encoder = ConversationEncoder(inner.tokenizer, inner.chat_template, special, multi_turn=spec.data.multi_turn,
                                  fim=spec.data.fim, image_token_id=IMAGE_SLOT if model.is_multimodal else None)
    images = root / spec.data.image_folder
    records, report = load_llava(root / spec.data.train_file, images, spec.data.malformed)
    log(report.summary())
    val = []
    if spec.data.val_file is not None and (root / spec.data.val_file).is_file():
        val, val_report = load_llava(root / spec.data.val_file, images, spec.data.malformed)
        val = val[: spec.eval.max_examples]
        log(val_report.summary())
    sampler = None
    if spec.eval.exact_match and val:
        from dvlm.core.sampler_specs import resolve_sampler

        sampler = resolve_sampler(spec.eval.sampler, spec.eval.sampler_overrides)

    optimizer = build_optimizer(model.parts(), spec.optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(spec.steps, spec.optimizer))
    start, last_ckpt = 0, None
    if resume and existing:
        last_ckpt = existing[-1]
        start = checkpointing.load(last_ckpt, model=inner, optimizer=optimizer, scheduler=scheduler, spec_hash=digest)
        log(f"resumed from {last_ckpt} at step {start}")
    wrapped = model if world == 1 else DistributedDataParallel(
        model, device_ids=[processes.device.index] if processes.device.type == "cuda" else None,
        find_unused_parameters=True)
    bf16 = spec.precision == "bf16" or (spec.precision == "auto" and processes.device.type == "cuda")
    autocast = (lambda: torch.autocast(processes.device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    order = ExampleOrder(len(records), spec.seed)
    save_model = save_model_fn(inner)
    metrics_file = out / "metrics.jsonl"

    def checkpoint(step: int) -> Path:
        path = None
        if processes.main:
            path = checkpointing.save(ckpt_root, step, save_model=save_model, optimizer=optimizer, scheduler=scheduler,
                                      spec_hash=digest, keep=spec.keep_checkpoints)
        distributed.barrier(processes)
        return path or ckpt_root / f"step-{step:06d}"

    def record(row: dict) -> None:
        if processes.main:
            metrics_file.parent.mkdir(parents=True, exist_ok=True)
            with metrics_file.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def run_eval(step: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if processes.main and val:
            metrics = evaluate(model, val, encoder, masking, seed=spec.seed, batch_size=spec.eval.batch_size,
                               eos_id=special.eos_id, device=processes.device, autocast=autocast,
                               sampler=sampler)
            record({"step": step, **metrics})
            log(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        distributed.barrier(processes)
        return metrics

    end = spec.steps if stop_after is None else min(spec.steps, start + stop_after)
    result = RunResult(start_step=start, step=start, last_loss=None, checkpoint=last_ckpt)
    bar = _progress(progress and processes.main, start, spec.steps)
    with bar:
        task = bar.add_task("train", total=spec.steps, completed=start, loss=float("nan"), tps=0.0)
        for step in range(start, end):
            tick = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss_sum = torch.zeros((), device=processes.device)
            tokens = 0
            for a in range(accumulation):
                u = a * world + processes.rank  # this process's micro-batch of the global batch
                pairs = order.micro_batch(step, u, micro, spec.global_batch_size)
                examples = [encoder(records[i], python_rng(spec.seed, "example", epoch, i)) for epoch, i in pairs]
                batch = to_device(collate(examples, special.eos_id, spec.data.extra_padding,
                                          python_rng(spec.seed, "pad", step, u)), processes.device)
                sync = contextlib.nullcontext() if world == 1 or a == accumulation - 1 else wrapped.no_sync()
                with sync:
                    with autocast():
                        loss, noised = wrapped(batch, masking, generator(spec.seed, "mask", step, u))
                    (loss / accumulation).backward()
                loss_sum += loss.detach()
                tokens += noised.masked.numel()
            mean_loss = float(distributed.mean(loss_sum / accumulation, processes))
            if not torch.isfinite(torch.tensor(mean_loss)):
                _diverged(f"the loss is {mean_loss}", step, last_ckpt)
            max_norm = spec.optimizer.max_grad_norm or float("inf")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable_parameters(optimizer), max_norm))
            if not torch.isfinite(torch.tensor(grad_norm)):
                _diverged(f"the gradient norm is {grad_norm}", step, last_ckpt)
            lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
            optimizer.step()
            scheduler.step()
            done = step + 1
            elapsed = time.perf_counter() - tick
            tps = tokens * world / elapsed
            result.step, result.last_loss = done, mean_loss
            bar.update(task, completed=done, loss=mean_loss, tps=tps)
            if done % spec.log_every == 0 or done == end:
                record({"step": done, "loss": mean_loss, "grad_norm": grad_norm, "lr": lrs,
                        "tokens_per_s": tps, "seconds": elapsed})
            if spec.eval.every and done % spec.eval.every == 0 and done < spec.steps:
                result.eval = run_eval(done)
            if (spec.checkpoint_every and done % spec.checkpoint_every == 0) or done == end:
                last_ckpt = result.checkpoint = checkpoint(done)
    if result.step == spec.steps:
        result.eval = run_eval(result.step)
    result.wall_time_s = time.perf_counter() - began
    return result


def _diverged(what: str, step: int, last: Path | None) -> None:
    kept = f"the last good checkpoint, {last}, is kept" if last else "no checkpoint had been written yet"
    raise TrainingError(f"{what} at step {step + 1}: training stopped before applying that update; {kept}. "
                        f"Lower optimizer.lr or lengthen the warmup, check the data, and resume or restart.")


def _progress(enabled: bool, start: int, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[tps]:,.0f} tok/s"),
        TimeRemainingColumn(), disable=not enabled,
    )
