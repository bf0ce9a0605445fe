"""AdamW with one parameter group per model part, frozen parts, and warmup + cosine decay.

Parts are named sub-modules of the model (``vision``, ``projector``, ``backbone``): LaViDa's stage 1
trains the projector only; stage 2 trains everything with the vision tower at a lower rate.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from dvlm.core.errors import SpecError
from dvlm.train.spec import OptimizerSpec


def freeze(parts: dict[str, nn.Module], spec: OptimizerSpec) -> None:
    """``requires_grad`` off for the parts in ``spec.frozen``, on for the others (LoRA-adapted parts keep
    only their adapters trainable, see ``dvlm.train.lora``)."""
    unknown = sorted((set(spec.frozen) | set(spec.part_lr)) - set(parts))
    if unknown:
        raise SpecError(f"optimizer: unknown model part(s) {unknown}; this model's parts are {sorted(parts)}")
    for name, module in parts.items():
        if getattr(module, "_dvlm_lora", False):
            continue
        for param in module.parameters():
            param.requires_grad_(name not in spec.frozen)


def build_optimizer(parts: dict[str, nn.Module], spec: OptimizerSpec) -> torch.optim.AdamW:
    """Freeze ``spec.frozen``; one AdamW group (named after its part) over each part's trainable parameters."""
    freeze(parts, spec)
    groups = []
    for name, module in parts.items():
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": spec.part_lr.get(name, spec.lr), "name": name})
    if not groups:
        raise SpecError(f"optimizer.frozen freezes every part ({sorted(parts)}): nothing would be trained")
    return torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay)


def store_frozen_in_bf16(model: nn.Module) -> int:
    """Cast frozen floating-point parameters to bf16 (bf16 runs: they are never updated, so they need no
    fp32 master copy); returns how many were cast."""
    cast = 0
    for param in model.parameters():
        if not param.requires_grad and param.is_floating_point() and param.dtype != torch.bfloat16:
            param.data = param.data.to(torch.bfloat16)
            cast += 1
    return cast


def warmup_cosine(steps: int, spec: OptimizerSpec) -> Callable[[int], float]:
    """Multiplier of the peak rate at optimizer step ``s`` (HF ``cosine_with_min_lr`` convention):
    linear ``s / warmup`` during warmup, then cosine from 1 down to ``min_lr_ratio`` at ``steps``."""
    warmup = spec.warmup_steps if spec.warmup_steps is not None else round(spec.warmup_ratio * steps)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return spec.min_lr_ratio + (1 - spec.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def trainable_parameters(optimizer: torch.optim.Optimizer) -> list[nn.Parameter]:
    return [p for group in optimizer.param_groups for p in group["params"]]
