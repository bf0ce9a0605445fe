"""``dvlm train SPEC --export OUT``: a training checkpoint -> one consolidated dvlm checkpoint.

Sharded (FSDP) checkpoints are gathered into an unsharded model; a LoRA run's adapters are merged into
the base weights (``dvlm.train.lora``). The result (``spec.json`` + ``model.safetensors`` + tokenizer) is
what ``dvlm.load_pretrained`` reads. Runs in one process, on CPU, with no process group.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dvlm.core.errors import TrainingError
from dvlm.train import checkpointing, distributed, sharded_checkpoint
from dvlm.train.spec import TrainSpec


def latest_checkpoint(spec: TrainSpec) -> Path:
    found = checkpointing.checkpoint_dirs(Path(spec.out_dir) / "checkpoints")
    if not found:
        raise TrainingError(f"{spec.out_dir}/checkpoints holds no complete checkpoint to export; train first")
    return found[-1]


def export(spec: TrainSpec, out: Path, checkpoint: Path | None = None, overwrite: bool = False) -> Path:
    """Write the weights of ``checkpoint`` (default: the latest of ``spec.out_dir``) as a dvlm checkpoint;
    an ``out`` that already holds a checkpoint is refused unless ``overwrite``."""
    from dvlm.core.checkpoint import check_destination, save_pretrained
    from dvlm.train.lora import apply_lora, merge_lora
    from dvlm.train.model import TrainingModel
    from dvlm.train.setup import build_model

    check_destination(Path(out), overwrite)
    folder = checkpoint or latest_checkpoint(spec)
    processes = distributed.Processes(rank=0, world=1, device=torch.device("cpu"))
    torch.manual_seed(spec.seed)  # a LoRA run's frozen base is the run's seeded random init (or init_from)
    vlm = build_model(spec, processes)
    model = TrainingModel(vlm).float()
    if spec.lora is not None:
        apply_lora(model, spec.lora)
    if sharded_checkpoint.is_sharded(folder):
        sharded_checkpoint.load_weights(folder, model)
    else:
        checkpointing.load_weights(folder, vlm)
    if spec.lora is not None:
        merge_lora(model)
    save_pretrained(vlm, out, overwrite=overwrite)
    return Path(out)
