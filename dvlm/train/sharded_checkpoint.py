"""Sharded training checkpoints (``torch.distributed.checkpoint``) for FSDP runs, and their export.

A checkpoint is a folder ``<out_dir>/checkpoints/step-000123/``:

- ``.metadata`` + ``__{rank}_0.distcp``: DCP files; each process writes its own shards of the weights
  (``model.*``) and of the AdamW states (``optimizer.*``), keyed by parameter name, with the global shape of
  every tensor, so a run resumes on any number of processes (DCP reshards on load);
- ``trainer_state.json``: step (= data position, see ``dvlm.data.batching``), spec hash, LR scheduler,
  python and torch RNG states (every random draw is derived from named seeds, so one copy serves all
  processes).

All processes write into ``.step-N.tmp``; after a barrier the main process adds ``trainer_state.json`` and
renames the folder into place, so an interrupted save never replaces the last complete checkpoint.
``dvlm.train.export`` (``dvlm train SPEC --export OUT``) turns one into a consolidated dvlm checkpoint
(``spec.json`` + ``model.safetensors``) that ``dvlm.load_pretrained`` reads. Nothing is pickled: DCP writes tensors and JSON-able values only.
"""

from __future__ import annotations

import base64
import json
import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from dvlm.core.errors import TrainingError
from dvlm.train.checkpointing import STATE, publish
from dvlm.train.determinism import rng_state, set_rng_state

METADATA = ".metadata"


def is_sharded(folder: Path) -> bool:
    return (folder / METADATA).is_file()


def save(root: Path, step: int, *, model: nn.Module, optimizer: torch.optim.Optimizer,
         scheduler: torch.optim.lr_scheduler.LRScheduler, spec_hash: str, keep: int, main: bool) -> Path:
    """Every process calls this; returns ``root/step-{step}`` once it is complete."""
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(tmp))
    _barrier()
    if main:
        rng = rng_state()
        document = {"step": step, "spec_hash": spec_hash, "scheduler": scheduler.state_dict(),
                    "python_rng": rng["python"],
                    "torch_rng": base64.b64encode(rng["torch"].numpy().tobytes()).decode()}
        (tmp / STATE).write_text(json.dumps(document) + "\n")
        publish(tmp, final, keep)
    _barrier()
    return final


def load(folder: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
         scheduler: torch.optim.lr_scheduler.LRScheduler, spec_hash: str) -> int:
    """Every process calls this: its shards of weights and optimizer (any world size), the scheduler and
    RNG; returns the step to continue from."""
    document = json.loads((folder / STATE).read_text())
    if document["spec_hash"] != spec_hash:
        raise TrainingError(
            f"{folder} was written by a run with a different spec (hash {document['spec_hash'][:12]}, this spec "
            f"{spec_hash[:12]}): resuming would not continue that run. Use the same spec, or a new out_dir.")
    if not is_sharded(folder):
        raise TrainingError(f"{folder} is a full (DDP) checkpoint but this run uses parallelism.kind fsdp; "
                            f"resume with parallelism.kind ddp, or start a new out_dir")
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    scheduler.load_state_dict(document["scheduler"])
    torch_rng = torch.frombuffer(bytearray(base64.b64decode(document["torch_rng"])), dtype=torch.uint8)
    set_rng_state({"torch": torch_rng, "python": document["python_rng"]})
    return int(document["step"])


def load_weights(folder: Path, model: nn.Module) -> None:
    """Read the weights of sharded checkpoint ``folder`` into ``model``, an unsharded copy of the training
    model built from the same spec (one process, no process group): the first half of an export."""
    if not is_sharded(folder):
        raise TrainingError(f"{folder} is not a sharded (FSDP) checkpoint: no {METADATA}. A DDP checkpoint "
                            f"already is a dvlm checkpoint; load it with dvlm.load_pretrained")
    state = {"model": model.state_dict()}
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=str(folder), no_dist=True)
    model.load_state_dict(state["model"])


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
