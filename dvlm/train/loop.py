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
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from dvlm.core.errors import TrainingError
from dvlm.core.plugins import get_registry
from dvlm.core.specs import spec_hash
from dvlm.data.loader import ImageTokens, MicroBatches, loader, micro_batch_keys
from dvlm.data.encode import IMAGE_SLOT, ConversationEncoder
from dvlm.data.llava import load_llava
from dvlm.train import checkpointing, distributed, parallel, sharded_checkpoint
from dvlm.train.determinism import generator
from dvlm.train.evaluate import evaluate, to_device
from dvlm.train.model import TrainingModel
from dvlm.train.optim import build_optimizer, freeze, store_frozen_in_bf16, trainable_parameters, warmup_cosine
from dvlm.train.lora import apply_lora
from dvlm.train.parallel import checkpoint_parts
from dvlm.train.setup import build_model, prepare_data_root, save_model_fn
from dvlm.train.spec import TrainSpec


@dataclass
class RunResult:
    """What a call to ``train`` did."""

    start_step: int
    """The step it started from (0, or the resumed checkpoint's)."""
    step: int
    """The step it reached (= optimizer steps completed)."""
    total_steps: int = 0
    """The run's length in optimizer steps (``steps``, or from ``epochs``)."""
    last_loss: float | None = None
    eval: dict[str, float] = field(default_factory=dict)
    """The last evaluation's metrics."""
    checkpoint: Path | None = None
    """The last checkpoint written or resumed from."""
    wall_time_s: float = 0.0


def train(spec: TrainSpec, *, resume: bool = False, stop_after: int | None = None,
          progress: bool = True, log: Callable[[str], Any] = print) -> RunResult:
    """Run (or with ``resume`` continue) the training run ``spec`` describes.

    ``stop_after``: stop after this many optimizer steps in this call, checkpointing first, as a job
    that hits its time limit would; a later ``resume`` continues exactly.
    """
    began = time.perf_counter()
    processes = distributed.start(spec.device, group_always=spec.parallelism.kind == "fsdp")
    try:
        run = Trainer(spec, processes, resume, log if processes.main else (lambda message: None))
        end = run.steps if stop_after is None else min(run.steps, run.start + stop_after)
        result = RunResult(start_step=run.start, step=run.start, total_steps=run.steps,
                           checkpoint=run.last_checkpoint)
        with _progress(progress and processes.main) as bar:
            task = bar.add_task("train", total=run.steps, completed=run.start, loss=float("nan"), tps=0.0)
            batches = run.loader(run.start, end)
            for step in range(run.start, end):
                metrics = run.step(step, batches)
                done = result.step = step + 1
                result.last_loss = metrics["loss"]
                bar.update(task, completed=done, loss=metrics["loss"], tps=metrics["tokens_per_s"])
                if done % spec.log_every == 0 or done == end:
                    run.record({"step": done, **metrics})
                if spec.eval.every and done % spec.eval.every == 0 and done < run.steps:
                    result.eval = run.evaluate(done)
                if (spec.checkpoint_every and done % spec.checkpoint_every == 0) or done == end:
                    result.checkpoint = run.checkpoint(done)
        if result.step == run.steps:
            result.eval = run.evaluate(result.step)
        result.wall_time_s = time.perf_counter() - began
        return result
    finally:
        distributed.stop()


class Trainer:
    """One run, built from its spec: the model, data, optimiser and the state to resume."""

    def __init__(self, spec: TrainSpec, processes: distributed.Processes, resume: bool,
                 log: Callable[[str], Any]) -> None:
        self.spec, self.processes, self.log = spec, processes, log
        self.out = Path(spec.out_dir)
        existing = checkpointing.checkpoint_dirs(self.out / "checkpoints")
        if existing and not resume:
            raise TrainingError(f"{self.out} already holds checkpoints (latest {existing[-1].name}); pass --resume "
                                f"to continue that run, or choose another out_dir")
        micro, world = spec.micro_batch_size, processes.world
        if spec.global_batch_size % (micro * world):
            raise TrainingError(f"global_batch_size {spec.global_batch_size} is not divisible by micro_batch_size "
                                f"{micro} x {world} processes; change one of them")
        self.accumulation = spec.global_batch_size // (micro * world)
        self.digest = spec_hash(spec)

        root = prepare_data_root(spec, processes)
        bf16 = spec.precision == "bf16" or (spec.precision == "auto" and processes.device.type == "cuda")
        self._build_model()
        self.records, self.val = self._load_data(root)
        self.batches = self._micro_batches()
        self.steps = spec.steps if spec.epochs is None else \
            math.ceil(spec.epochs * len(self.records) / spec.global_batch_size)
        self._distribute(bf16)  # shards or replicas, optimizer, scheduler
        self.start, self.last_checkpoint = 0, None
        if existing:
            self.last_checkpoint = existing[-1]
            load = sharded_checkpoint.load if self.fsdp else checkpointing.load
            self.start = load(self.last_checkpoint, model=self.model if self.fsdp else self.vlm,
                              optimizer=self.optimizer, scheduler=self.scheduler, spec_hash=self.digest)
            log(f"resumed from {self.last_checkpoint} at step {self.start}")
        if not self.fsdp:  # DDP wraps after the resumed weights are in (it broadcasts rank 0's at start)
            self.wrapped = parallel.ddp(self.model, processes)
        self.sync = parallel.gradient_sync(self.wrapped, spec.parallelism.kind, processes)
        autocast = bf16 and not self.fsdp  # FSDP computes in bf16 through its mixed-precision policy
        self.autocast = (lambda: torch.autocast(processes.device.type, dtype=torch.bfloat16)) if autocast \
            else contextlib.nullcontext

    def _build_model(self) -> None:
        """The model (seeded: identical in every process and run), its LoRA adapters, recomputed blocks, the
        masking strategy and the conversation encoder."""
        spec = self.spec
        torch.manual_seed(spec.seed)
        self.vlm = build_model(spec, self.processes)
        self.model = TrainingModel(self.vlm, max_length=spec.data.max_length)
        self.model.to(self.processes.device).float().train()  # fp32 trained weights; bf16 compute per `precision`
        if spec.lora is not None:
            apply_lora(self.model, spec.lora)
        checkpoint_parts(self.model.parts(), spec.activation_checkpointing)
        self.special = self.model.backbone.special_tokens
        self.masking = get_registry().build("masking_strategies", spec.masking)
        self.encoder = ConversationEncoder(
            self.vlm.tokenizer, self.vlm.chat_template, self.special, multi_turn=spec.data.multi_turn,
            fim=spec.data.fim, image_token_id=IMAGE_SLOT if self.model.is_multimodal else None)

    def _micro_batches(self) -> MicroBatches:
        spec, vision = self.spec, self.vlm.vision if self.model.is_multimodal else None
        return MicroBatches(
            self.records, self.encoder, seed=spec.seed, micro_size=spec.micro_batch_size,
            global_size=spec.global_batch_size, eos_id=self.special.eos_id, extra_padding=spec.data.extra_padding,
            group_by_length=spec.data.group_by_length, max_length=spec.data.max_length,
            image_tokens=ImageTokens(self.vlm.image_layout, vision.image_size, vision.grid_size) if vision else None,
            max_image_pixels=self.vlm.spec.max_image_pixels if vision else None)

    def _distribute(self, bf16: bool) -> None:
        """Freeze, then FSDP2-shard (or, for DDP with bf16, store the frozen weights in bf16); the optimizer
        over the resulting trainable parameters, and its schedule."""
        spec = self.spec
        self.fsdp = spec.parallelism.kind == "fsdp"
        parts = self.model.parts()
        freeze(parts, spec.optimizer)
        if self.fsdp:
            self.wrapped = parallel.shard(self.model, parts, spec.parallelism, self.processes, bf16)
        elif bf16:
            store_frozen_in_bf16(self.model)  # no optimizer state, no master copy: half the memory
        self.optimizer = build_optimizer(self.model.parts(), spec.optimizer)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(self.steps, spec.optimizer))

    def _load_data(self, root: Path) -> tuple[list, list]:
        data, images = self.spec.data, root / self.spec.data.image_folder
        records, report = load_llava(root / data.train_file, images, data.malformed)
        self.log(report.summary())
        val = []
        if data.val_file is not None and (root / data.val_file).is_file():
            val, val_report = load_llava(root / data.val_file, images, data.malformed)
            self.log(val_report.summary())
        return records, val[: self.spec.eval.max_examples]

    def micro_batch(self, step: int, index: int) -> dict:
        """Micro-batch ``index`` of optimizer step ``step``: the same examples, augmentation and padding
        whichever process (or DataLoader worker) builds it."""
        return to_device(self.batches[(step, index)], self.processes.device)

    def loader(self, start: int, end: int) -> Iterator[dict]:
        """This process's micro-batches for steps ``[start, end)``, built ahead by ``data.num_workers`` workers."""
        keys = micro_batch_keys(start, end, self.accumulation, self.processes.world, self.processes.rank)
        return (to_device(batch, self.processes.device)
                for batch in loader(self.batches, keys, self.spec.data.num_workers))

    def step(self, step: int, batches: Iterator[dict] | None = None) -> dict:
        """One optimizer step on ``batches`` (default: built here); raises ``TrainingError`` (weights untouched)
        on a non-finite loss or gradient."""
        tick = time.perf_counter()
        world, rank = self.processes.world, self.processes.rank
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, tokens, padding = torch.zeros((), device=self.processes.device), 0, 0.0
        for a in range(self.accumulation):
            index = a * world + rank  # this process's micro-batch of the global batch
            batch = next(batches) if batches is not None else self.micro_batch(step, index)
            padding += batch["padding"]
            with self.sync(a == self.accumulation - 1):
                with self.autocast():
                    loss, noised = self.wrapped(batch, self.masking, generator(self.spec.seed, "mask", step, index))
                (loss / self.accumulation).backward()
            loss_sum += loss.detach()
            tokens += noised.masked.numel()
        means = torch.stack([loss_sum, loss_sum.new_tensor(padding)]) / self.accumulation
        loss, padding = distributed.mean(means, self.processes).tolist()
        if not torch.isfinite(torch.tensor(loss)):
            self._diverged(f"the loss is {loss}", step)
        max_norm = self.spec.optimizer.max_grad_norm or float("inf")
        grad_norm = parallel.full_norm(torch.nn.utils.clip_grad_norm_(trainable_parameters(self.optimizer), max_norm))
        if not torch.isfinite(torch.tensor(grad_norm)):
            self._diverged(f"the gradient norm is {grad_norm}", step)
        lrs = {group["name"]: group["lr"] for group in self.optimizer.param_groups}
        self.optimizer.step()
        self.scheduler.step()
        seconds = time.perf_counter() - tick
        return {"loss": loss, "grad_norm": grad_norm, "lr": lrs, "tokens_per_s": tokens * world / seconds,
                "padding": padding, "seconds": seconds}

    def evaluate(self, step: int) -> dict[str, float]:
        """Validation loss (and exact match) on the main process (FSDP: on every process, each holding a
        shard of the weights); recorded and logged."""
        metrics: dict[str, float] = {}
        if (self.processes.main or self.fsdp) and self.val:
            sampler = None
            if self.spec.eval.exact_match:
                from dvlm.core.sampler_specs import resolve_sampler

                sampler = resolve_sampler(self.spec.eval.sampler, self.spec.eval.sampler_overrides)
            metrics = evaluate(self.model, self.val, self.encoder, self.masking, seed=self.spec.seed,
                               batch_size=self.spec.eval.batch_size, eos_id=self.special.eos_id,
                               device=self.processes.device, autocast=self.autocast, sampler=sampler,
                               gathered=lambda: parallel.gathered(self.model, self.fsdp))
            self.record({"step": step, **metrics})
            self.log(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        distributed.barrier(self.processes)
        return metrics

    def checkpoint(self, step: int) -> Path:
        root = self.out / "checkpoints"
        if self.fsdp:
            self.last_checkpoint = sharded_checkpoint.save(
                root, step, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                spec_hash=self.digest, keep=self.spec.keep_checkpoints, main=self.processes.main)
            return self.last_checkpoint
        if self.processes.main:
            checkpointing.save(root, step, save_model=save_model_fn(self.vlm), optimizer=self.optimizer,
                               scheduler=self.scheduler, spec_hash=self.digest, keep=self.spec.keep_checkpoints)
        distributed.barrier(self.processes)
        self.last_checkpoint = root / f"step-{step:06d}"
        return self.last_checkpoint

    def record(self, row: dict) -> None:
        """Append a row to ``<out_dir>/metrics.jsonl`` (main process)."""
        if self.processes.main:
            self.out.mkdir(parents=True, exist_ok=True)
            with (self.out / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")

    def _diverged(self, what: str, step: int) -> None:
        last = self.last_checkpoint
        kept = f"the last good checkpoint, {last}, is kept" if last else "no checkpoint had been written yet"
        raise TrainingError(f"{what} at step {step + 1}: training stopped before applying that update; {kept}. "
                            f"Lower optimizer.lr or lengthen the warmup, check the data, and resume or restart.")


def _progress(enabled: bool):
    """A rich progress bar with the loss and tokens/s (disabled: a no-op)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[tps]:,.0f} tok/s"),
        TimeRemainingColumn(), disable=not enabled,
    )
