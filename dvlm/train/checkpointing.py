"""Training checkpoints of DDP (and single-process) runs: everything needed to continue a run bit-exactly,
written atomically. FSDP runs write sharded checkpoints instead (``dvlm.train.sharded_checkpoint``).

A checkpoint is a folder ``<out_dir>/checkpoints/step-000123/``:

- ``model.safetensors`` + ``spec.json`` (+ tokenizer files): a dvlm model checkpoint that
  ``dvlm.load_pretrained`` reads on its own; a LoRA run writes ``adapter_model.safetensors`` instead, its
  trainable tensors alone (``dvlm train --export`` merges them into a full checkpoint);
- ``optimizer.safetensors``: AdamW moments and step counts, and the torch RNG states;
- ``trainer_state.json``: the step, the spec hash, the optimiser's groups, the LR scheduler and the
  python RNG state.

The data position needs no field: it is the step (``dvlm.data.batching``). The folder is written
under a temporary name and renamed into place, so a crash leaves either the previous checkpoint
or the new one, never a half-written one. Only safetensors and JSON: nothing is pickled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from dvlm.core.errors import TrainingError
from dvlm.train.determinism import rng_state, set_rng_state

STEP_DIR = re.compile(r"^step-(\d+)$")
STATE = "trainer_state.json"
ADAPTERS = "adapter_model.safetensors"


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temporary folders are ignored)."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and (p / STATE).is_file()]
    return [p for _, p in sorted(found)]


def save(root: Path, step: int, *, save_model: Callable[[Path], None], optimizer: torch.optim.Optimizer,
         scheduler: torch.optim.lr_scheduler.LRScheduler, spec_hash: str, keep: int) -> Path:
    """Write ``root/step-{step}`` atomically, then delete all but the newest ``keep`` checkpoints."""
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(tmp)
    tensors, state = _flatten_optimizer(optimizer.state_dict())
    rng = rng_state()
    tensors["rng.torch"] = rng["torch"]
    for i, cuda_state in enumerate(rng.get("cuda", [])):
        tensors[f"rng.cuda.{i}"] = cuda_state
    save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp / "optimizer.safetensors"))
    document = {"step": step, "spec_hash": spec_hash, "optimizer": state,
                "scheduler": scheduler.state_dict(), "python_rng": rng["python"]}
    (tmp / STATE).write_text(json.dumps(document) + "\n")
    return publish(tmp, final, keep)


def publish(tmp: Path, final: Path, keep: int) -> Path:
    """Rename a fully written checkpoint folder into place, then drop all but the newest ``keep``."""
    root = final.parent
    if final.exists():  # re-written after a resume from an earlier step: swap, never leave a gap
        old = root / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    for stale in checkpoint_dirs(root)[:-keep]:
        shutil.rmtree(stale)
    return final


def load(folder: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         scheduler: torch.optim.lr_scheduler.LRScheduler, spec_hash: str) -> int:
    """Restore weights, optimiser, scheduler and RNG from ``folder``; returns the step to continue from."""
    document = json.loads((folder / STATE).read_text())
    if document["spec_hash"] != spec_hash:
        raise TrainingError(
            f"{folder} was written by a run with a different spec (hash {document['spec_hash'][:12]}, this spec "
            f"{spec_hash[:12]}): resuming would not continue that run. Use the same spec, or a new out_dir."
        )
    if (folder / ".metadata").is_file():
        raise TrainingError(f"{folder} is a sharded (FSDP) checkpoint but this run uses parallelism.kind ddp; "
                            f"resume with parallelism.kind fsdp, or export it (dvlm train SPEC --export OUT)")
    load_weights(folder, model)
    tensors = load_file(str(folder / "optimizer.safetensors"))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, document["optimizer"]))
    scheduler.load_state_dict(document["scheduler"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    set_rng_state({"torch": tensors["rng.torch"], "python": document["python_rng"],
                   **({"cuda": cuda} if cuda else {})})
    return int(document["step"])


def load_weights(folder: Path, model: torch.nn.Module) -> None:
    """The model weights of checkpoint ``folder``: all of them, or a LoRA run's trainable tensors (the
    frozen base weights already in ``model`` are the run's own, from its spec)."""
    adapters = folder / ADAPTERS
    files = [adapters] if adapters.is_file() else sorted(folder.glob("model*.safetensors"))
    weights = {}
    for file in files:
        weights.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if adapters.is_file():  # only the trainable tensors were written
        frozen = {name for name, param in model.named_parameters() if not param.requires_grad}
        missing = [name for name in missing if name not in frozen]
    if missing or unexpected:
        raise TrainingError(f"{folder}: weights do not match the model (missing {missing[:5]}, "
                            f"unexpected {unexpected[:5]})")


def save_trainable(model: torch.nn.Module, folder: Path) -> None:
    """A LoRA run's model checkpoint: the trainable tensors alone (adapters, projector)."""
    trainable = {name: param.detach().contiguous().cpu() for name, param in model.named_parameters()
                 if param.requires_grad}
    save_file(trainable, str(folder / ADAPTERS))


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer ``state_dict`` -> (tensors by ``state.{param}.{key}``, the JSON-able rest)."""
    tensors, scalars = {}, {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("state."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in rest["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": rest["param_groups"]}
