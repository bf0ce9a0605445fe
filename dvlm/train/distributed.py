"""Process group set-up for ``torchrun``: gloo on CPU, NCCL on CUDA; a single process needs none."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    """This process's place in the run."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def start(device: str, group_always: bool = False) -> Processes:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1). ``group_always``: a single
    process outside torchrun gets a group of one (FSDP shards over a device mesh, even of size 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend)
    elif group_always and not dist.is_initialized():
        if "MASTER_ADDR" in os.environ:  # torchrun with one process
            dist.init_process_group(backend)
        else:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Processes(rank=rank, world=world, device=resolved)


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean(value: torch.Tensor, processes: Processes) -> torch.Tensor:
    """Average a tensor over the processes (identity for one process)."""
    if processes.world > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= processes.world
    return value


def barrier(processes: Processes) -> None:
    if processes.world > 1:
        dist.barrier()
