"""LoRA through ``peft``: low-rank adapters on chosen linear layers of the backbone (and the vision encoder).

``apply_lora`` injects peft ``LoraLayer`` wrappers in place (``q_proj`` becomes ``q_proj.base_layer`` +
``q_proj.lora_A/B.default``) into each adapted part and leaves only the adapters of that part trainable;
the projector (and any part not adapted and not frozen) is trained in full. A checkpoint of a LoRA run
holds the trainable tensors alone (``adapter_model.safetensors``: adapters + projector), the base weights
coming from the spec (``init_from``, or the seeded random init). ``merge_lora`` folds each adapter into its
base weight, ``W + (alpha / r) B A``, and puts the plain ``nn.Linear`` back, so the merged model has the
original parameter names and computes the same logits.
"""

from __future__ import annotations

from torch import nn

from dvlm.core.errors import SpecError
from dvlm.train.spec import LoraSpec


def apply_lora(model: nn.Module, spec: LoraSpec) -> int:
    """Inject adapters into ``model.parts()`` named in ``spec.parts``; returns the number of adapted layers."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    parts = model.parts()
    adapted = 0
    for name in spec.parts:
        if name not in parts:
            raise SpecError(f"lora.parts: this model has no '{name}' part (its parts: {sorted(parts)})")
        targets = spec.vision_target_modules if name == "vision" else spec.target_modules
        present = {n.rsplit(".", 1)[-1] for n, m in parts[name].named_modules() if isinstance(m, nn.Linear)}
        missing = sorted(set(targets) - present)
        if missing:
            raise SpecError(f"lora: the {name} has no linear layer named {missing}; its linear layers are "
                            f"{sorted(present)}. Set lora.{'vision_' if name == 'vision' else ''}target_modules")
        config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=targets)
        inject_adapter_in_model(config, parts[name])
        parts[name]._dvlm_lora = True  # freeze() leaves this part's requires_grad as peft set it
        adapted += sum(isinstance(m, LoraLayer) for m in parts[name].modules())
    return adapted


def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its base layer and put the base layer back; returns how many were merged."""
    from peft.tuners.lora import LoraLayer

    merged = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, LoraLayer):
                child.merge()
                setattr(parent, child_name, child.get_base_layer())
                merged += 1
    for module in model.modules():
        if getattr(module, "_dvlm_lora", False):
            del module._dvlm_lora
    return merged


def is_lora(model: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(m, LoraLayer) for m in model.modules())
