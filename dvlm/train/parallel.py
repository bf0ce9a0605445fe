"""How the processes share a model: DDP replicas, or FSDP2 shards per transformer block; and which
blocks recompute their activations in the backward pass.

FSDP2 (``torch.distributed.fsdp.fully_shard`` over a 1-D device mesh) makes each transformer block of
the backbone and of the vision encoder one communication group: its parameters live as 1/N-th shards
(DTensors) and are all-gathered just before the block runs, freed after it (``reshard_after_forward``),
and its gradients are reduce-scattered as soon as the block's backward is done. What is left (token
embeddings, norms, LM head, projector, image newline) forms the root group. With bf16 the gathered
parameters and the compute are bf16 while the shards, the gradient reduction and AdamW stay fp32
(``MixedPrecisionPolicy``); ``cpu_offload`` keeps the shards in host memory.

Gradient accumulation skips the reduce-scatter on all but the last micro-batch
(``set_requires_gradient_sync``), as DDP's ``no_sync`` does.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable

import torch
from torch import nn

from dvlm.core.errors import TrainingError
from dvlm.train.distributed import Processes
from dvlm.train.model import enable_gradient_checkpointing
from dvlm.train.spec import ParallelismSpec


def transformer_blocks(module: nn.Module) -> list[nn.Module]:
    """Every entry of every ``nn.ModuleList`` under ``module``: LLaDA ``blocks``, Dream ``layers``,
    SigLIP / CLIP ``encoder.layers``, ViT ``blocks``."""
    return [block for layers in module.modules() if isinstance(layers, nn.ModuleList) for block in layers]


def checkpoint_parts(parts: dict[str, nn.Module], names: Iterable[str]) -> int:
    """Recompute every transformer block of the named parts in the backward pass; returns how many."""
    return sum(enable_gradient_checkpointing(parts[name]) for name in names if name in parts)


def shard(model: nn.Module, parts: dict[str, nn.Module], spec: ParallelismSpec, processes: Processes,
          bf16: bool) -> nn.Module:
    """FSDP2 ``fully_shard`` each transformer block of the vision encoder and the backbone, then the rest
    of ``model`` as the root group. The module is changed in place (parameter names are kept) and returned."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    if spec.cpu_offload and processes.device.type != "cuda":
        raise TrainingError(f"parallelism.cpu_offload moves the shards from GPU to host memory, but this run is on "
                            f"{processes.device.type}: drop cpu_offload, or train on CUDA devices")
    mesh = init_device_mesh(processes.device.type, (processes.world,))
    options = dict(
        mesh=mesh,
        mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16
        else MixedPrecisionPolicy(),
        offload_policy=CPUOffloadPolicy() if spec.cpu_offload else OffloadPolicy(),
    )
    for name in ("vision", "backbone"):
        if name in parts:
            for block in transformer_blocks(parts[name]):
                fully_shard(block, reshard_after_forward=spec.reshard_after_forward, **options)
    fully_shard(model, reshard_after_forward=spec.reshard_after_forward, **options)
    return model


def ddp(model: nn.Module, processes: Processes) -> nn.Module:
    """A DDP replica (one process: the model itself)."""
    if processes.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model, device_ids=[processes.device.index] if processes.device.type == "cuda" else None,
        find_unused_parameters=True)  # frozen parts, a layout without its newline


def gradient_sync(wrapped: nn.Module, kind: str, processes: Processes) -> Callable[[bool], contextlib.AbstractContextManager]:
    """``sync(last)``: a context for one micro-batch's backward that reduces gradients only when ``last``."""
    if kind == "fsdp":
        def fsdp_sync(last: bool):
            wrapped.set_requires_gradient_sync(last)
            return contextlib.nullcontext()
        return fsdp_sync
    if processes.world == 1:
        return lambda last: contextlib.nullcontext()
    return lambda last: contextlib.nullcontext() if last else wrapped.no_sync()


def full_norm(norm: torch.Tensor) -> float:
    """A gradient norm as a float (FSDP's is a replicated DTensor)."""
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


@contextlib.contextmanager
def gathered(model: nn.Module, fsdp: bool):
    """FSDP: the root group's parameters (embeddings, head, projector) gathered for code that calls
    sub-modules directly (generation); the blocks gather their own. Otherwise nothing to do."""
    if not fsdp:
        yield
        return
    model.unshard()
    try:
        yield
    finally:
        model.reshard()
