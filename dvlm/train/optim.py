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


def build_optimizer(parts: dict[str, nn.Module], spec: OptimizerSpec) -> torch.optim.AdamW:
    """Freeze ``spec.frozen``; one AdamW group (named after its part) per trainable part."""
    unknown = sorted((set(spec.frozen) | set(spec.part_lr)) - set(parts))
    if unknown:
        raise SpecError(f"optimizer: unknown model part(s) {unknown}; this model's parts are {sorted(parts)}")
    groups = []
    for name, module in parts.items():
        trainable = name not in spec.frozen
        params = list(module.parameters())
        for param in params:
            param.requires_grad_(trainable)
        if trainable and params:
            groups.append({"params": params, "lr": spec.part_lr.get(name, spec.lr), "name": name})
    if not groups:
        raise SpecError(f"optimizer.frozen freezes every part ({sorted(parts)}): nothing would be trained")
    return torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay)


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
