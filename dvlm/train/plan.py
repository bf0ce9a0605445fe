"""``dvlm train SPEC --plan``: the memory one process needs, before any is allocated.

The model is built on the ``meta`` device (shapes, no storage) with the run's LoRA adapters and frozen
parts, so parameter counts are exact. Bytes per process, for P trainable and Q frozen parameters over N
processes (``world_size``), a = 2 bytes in bf16 (4 in fp32):

- **ddp** (and one process): weights 4P (fp32 master) + Q·a (bf16 runs store frozen weights in bf16);
  gradients 4P, plus 4P of DDP reducer buckets when N > 1; AdamW 8P (two fp32 moments).
- **fsdp**: shards (4P + 4Q)/N, gradients 4P/N, AdamW 8P/N, plus the working set: the root group
  (embeddings, head, projector; gathered for the whole step, with its gradients) and two gathered
  blocks (the running one and the prefetched one) in a bytes with their fp32 gradients. ``cpu_offload``
  moves the shards, gradients and AdamW states to host memory.

Activations (an estimate, the part that depends on data): R rows of T tokens per micro-batch (R =
examples × copies of the masking strategy, T = ``data.max_length`` or the backbone's context), per
backbone block ``R·T·(10·D + 4·F)·a`` saved for the backward (norm inputs and outputs, q, k, v, rotated
q and k, attention output, residual, the four SwiGLU tensors), or with activation checkpointing
``R·T·D·a`` per block plus one block recomputed; the vision encoder likewise per view token
(``6·C + 2·I``) when it is trained; the LM head ``R·T·V·a`` logits plus fp32 log-probabilities and their
gradient at the masked half (``8 · R·T/2 · V``). It leaves out allocator fragmentation and CUDA context
(about 1-3 GB), so a plan within a few GB of the limit is a risk, which the report says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from dvlm.core.errors import SpecError
from dvlm.train.spec import TrainSpec

GB = 1e9


@dataclass
class MemoryPlan:
    """Per-process bytes by kind, and what they assumed."""

    parallelism: str
    world_size: int
    gpu_memory_gb: float
    trainable: int
    frozen: int
    rows: int
    tokens: int
    checkpointed: list[str]
    device: dict[str, float] = field(default_factory=dict)
    """GPU bytes: weights, gradients, optimizer, working set, activations."""
    host: dict[str, float] = field(default_factory=dict)
    """Host bytes (cpu_offload)."""

    @property
    def total(self) -> float:
        return sum(self.device.values())

    @property
    def fits(self) -> bool:
        return self.total <= self.gpu_memory_gb * GB

    def render(self) -> str:
        lines = [f"memory plan: {self.parallelism}, world size {self.world_size}, "
                 f"{self.trainable / 1e9:.3f} B trainable + {self.frozen / 1e9:.3f} B frozen parameters; "
                 f"micro-batch {self.rows} rows x {self.tokens} tokens; activation checkpointing: "
                 f"{', '.join(self.checkpointed) or 'off'}",
                 "per process (GPU):"]
        lines += [f"  {name:<12} {value / GB:8.2f} GB" for name, value in self.device.items()]
        lines.append(f"  {'total':<12} {self.total / GB:8.2f} GB of {self.gpu_memory_gb:g} GB")
        if self.host:
            lines.append("per process (host, cpu_offload): " + ", ".join(
                f"{name} {value / GB:.2f} GB" for name, value in self.host.items()))
        margin = self.gpu_memory_gb * GB - self.total
        if not self.fits:
            remedies = ["parallelism.kind fsdp"] if self.parallelism == "ddp" else ["more processes (world_size)"]
            if set(self.checkpointed) != {"backbone", "vision"}:
                remedies.append("activation_checkpointing: [backbone, vision]")
            remedies += ["lora", "a smaller micro_batch_size or data.max_length"]
            lines.append(f"WARNING: needs {self.total / GB:.1f} GB per process, more than the {self.gpu_memory_gb:g} GB "
                         f"GPU; try {', '.join(remedies)}")
        elif margin < 3 * GB:
            lines.append(f"note: fits with {margin / GB:.1f} GB to spare; allocator fragmentation and the CUDA "
                         f"context (1-3 GB) are not counted")
        else:
            lines.append(f"fits: {margin / GB:.1f} GB to spare")
        return "\n".join(lines)


def memory_plan(spec: TrainSpec, world_size: int | None = None) -> MemoryPlan:
    """The plan of ``spec`` at ``world_size`` processes (default: ``spec.world_size``, else 1)."""
    from dvlm.train.lora import apply_lora
    from dvlm.train.model import TrainingModel
    from dvlm.train.optim import freeze
    from dvlm.train.parallel import transformer_blocks

    world = world_size or spec.world_size or 1
    model_spec = planned_model_spec(spec)
    model = TrainingModel(_meta_model(model_spec))
    if spec.lora is not None:
        with torch.device("meta"):
            apply_lora(model, spec.lora)
    parts = model.parts()
    freeze(parts, spec.optimizer)
    bf16 = spec.precision in ("bf16", "auto")  # auto is bf16 on the GPUs a plan is for
    a = 2 if bf16 else 4
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)

    blocks = {name: transformer_blocks(parts[name]) for name in ("vision", "backbone") if name in parts}
    in_blocks = {id(p) for group in blocks.values() for block in group for p in block.parameters()}
    root = [p for p in model.parameters() if id(p) not in in_blocks]
    biggest = max((sum(p.numel() for p in block.parameters()) for group in blocks.values() for block in group),
                  default=0)

    plan = MemoryPlan(spec.parallelism.kind, world, spec.plan.gpu_memory_gb, trainable, frozen, 0, 0,
                      list(spec.activation_checkpointing))
    if spec.parallelism.kind == "ddp":
        plan.device["weights"] = 4 * trainable + a * frozen
        plan.device["gradients"] = 4 * trainable * (2 if world > 1 else 1)
        plan.device["optimizer"] = 8 * trainable
    else:
        shards = {"weights": 4 * (trainable + frozen) / world, "gradients": 4 * trainable / world,
                  "optimizer": 8 * trainable / world}
        (plan.host if spec.parallelism.cpu_offload else plan.device).update(shards)
        root_params = sum(p.numel() for p in root)
        root_trainable = sum(p.numel() for p in root if p.requires_grad)
        plan.device["working set"] = a * root_params + 4 * root_trainable + 2 * biggest * (a + 4)
    plan.rows, plan.tokens, plan.device["activations"] = _activations(spec, model_spec, parts, a)
    return plan


def planned_model_spec(spec: TrainSpec):
    """The model spec a run of ``spec`` builds: ``model``, with the backbone of ``init_from`` when that is
    a backbone-only checkpoint folder (architecture read by its checkpoint layout, no weights)."""
    from dvlm.core.checkpoint import detect_layout
    from dvlm.core.hub import resolve_folder

    if spec.init_from is not None:
        folder = resolve_folder(spec.init_from)  # a hub id too, as the run itself accepts
        _, layout = detect_layout(folder)
        stored = layout.read(folder).spec
        if spec.model is None:
            return stored
        return spec.model.model_copy(update={"backbone": stored.backbone})
    if spec.model is None:
        raise SpecError("--plan needs `model` or `init_from`")
    return spec.model


def _meta_model(model_spec) -> nn.Module:
    """The model on the meta device: every shape, no storage; a vision encoder is never read from disk."""
    from dvlm.core.checkpoint import skip_init
    from dvlm.core.vlm import build

    if model_spec.vision_encoder is not None:
        vision = model_spec.vision_encoder.model_copy(update={"init": "random", "pretrained": None})
        model_spec = model_spec.model_copy(update={"vision_encoder": vision})
    with torch.device("meta"), skip_init():
        return build(model_spec)


def _activations(spec: TrainSpec, model_spec, parts: dict[str, nn.Module], a: int) -> tuple[int, int, float]:
    """(rows, tokens, bytes) of one micro-batch's saved activations; see the module docstring."""
    backbone = model_spec.backbone
    copies = 2 if spec.masking.kind == "complementary" else 1
    rows = spec.micro_batch_size * copies
    tokens = spec.data.max_length or getattr(backbone, "max_sequence_length", None) or 4096
    width, hidden, vocab, layers = _backbone_dims(backbone)
    block = llada_block_bytes(rows, tokens, width, hidden, a)
    checkpointed = set(spec.activation_checkpointing)
    if "backbone" in checkpointed:
        total = rows * tokens * layers * width * a + block  # every block's input, one block recomputed
    else:
        total = layers * block
    total += rows * tokens * vocab * a + 8 * (rows * tokens // 2) * vocab  # logits; fp32 log-probs + gradient
    vision = model_spec.vision_encoder
    trains_vision = "vision" in parts and any(p.requires_grad for p in parts["vision"].parameters())
    if vision is not None and trains_vision:
        view_tokens = spec.micro_batch_size * _views(model_spec.image_layout) * (vision.image_size // vision.patch_size) ** 2
        vision_layers = vision.layers_to_run(vision.num_layers)
        per_token = 6 * vision.hidden_size + 2 * vision.intermediate_size
        if "vision" in checkpointed:
            total += view_tokens * (vision_layers * vision.hidden_size + per_token) * a
        else:
            total += view_tokens * vision_layers * per_token * a
    return rows, tokens, float(total)


def llada_block_bytes(rows: int, tokens: int, width: int, hidden: int, a: int) -> int:
    """Bytes one LLaDA / Dream block saves for its backward: ``10·D + 4·F`` values per token."""
    return rows * tokens * (10 * width + 4 * hidden) * a


def _backbone_dims(params) -> tuple[int, int, int, int]:
    """(width D, MLP hidden F, vocabulary V, blocks L) of a LLaDA or Dream backbone."""
    if params.kind == "llada":
        return params.d_model, params.mlp_hidden_size, params.vocab_size, params.n_layers
    return params.hidden_size, params.intermediate_size, params.vocab_size, params.num_hidden_layers


def _views(layout) -> int:
    """Views per image of an image layout at most: the base view plus the largest grid of crops."""
    if layout is None or layout.kind in ("single", "pad"):
        return 1
    if layout.kind == "anyres":
        return 1 + max(w * h for w, h in layout.grids)
    if layout.kind == "anyres_max":
        return 1 + layout.max_views
    return 1
