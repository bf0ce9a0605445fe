"""Where one evaluation process runs: its rank among the launched processes, its device and its dtype.

``accelerate launch`` and ``torchrun`` start one process per device and tell each its ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``; lmms-eval's evaluator gives process ``r`` the documents ``r, r + W,
r + 2W, ...`` of every task and gathers the answers on rank 0. A process must therefore sit on the device of
its *local* rank (``cuda:LOCAL_RANK``), and agree with the launcher's process group about the device type
(NCCL collectives need CUDA tensors, gloo ones CPU tensors). ``place`` decides all of that from plain values,
so it is tested without GPUs or processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dvlm.core.errors import EvalError


@dataclass(frozen=True)
class Placement:
    """One process's share of a (possibly multi-process) evaluation."""

    rank: int
    world_size: int
    local_rank: int
    device: str
    """``"cpu"`` or ``"cuda:N"``."""
    dtype: str | None
    """A dtype name, or None for the checkpoint's stored dtype."""
    note: str | None = None
    """A line for the log when a default decided something the user may not expect (CPU fallback)."""


def place(device: str, dtype: str, *, rank: int, world_size: int, local_rank: int, cuda_devices: int,
          launcher_device_type: str | None = None) -> Placement:
    """Resolve ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) and ``dtype`` (``auto`` or a name) for the
    process ``rank`` of ``world_size`` (``local_rank`` on its machine) on a machine with ``cuda_devices`` GPUs.

    ``launcher_device_type``: the device type of the launcher's process group (``"cuda"`` or ``"cpu"``) when
    several processes run; a different requested device type is an error that says how to get it.
    """
    note = None
    if device == "auto":
        device = "cuda" if cuda_devices > 0 else "cpu"
        if device == "cpu":
            note = "dvlm: no CUDA device found, evaluating on CPU (pass --model_args device=cuda to require a GPU)"
    kind, _, index = device.partition(":")
    if kind == "cuda" and cuda_devices == 0:
        raise EvalError(f"--model_args device={device}: torch sees no CUDA device here; use device=cpu or "
                        "device=auto (CUDA when available, else CPU)")
    if world_size > 1:
        if index:
            raise EvalError(f"--model_args device={device} pins one GPU, but {world_size} processes run: pass "
                            "device=cuda or device=auto and each process takes the GPU of its local rank")
        if launcher_device_type is not None and launcher_device_type != kind:
            fix = ("hide the GPUs (CUDA_VISIBLE_DEVICES= accelerate launch ...) to evaluate on CPU"
                   if kind == "cpu" else "run on a machine whose GPUs the launcher sees")
            raise EvalError(f"--model_args device={device}, but the {world_size} launched processes communicate "
                            f"over {launcher_device_type}: {fix}, or leave device=auto")
        if kind == "cuda":
            if local_rank >= cuda_devices:
                raise EvalError(f"process {rank} is local rank {local_rank} but this machine has {cuda_devices} "
                                f"GPU(s): launch at most {cuda_devices} processes per machine "
                                "(accelerate launch --num_processes / torchrun --nproc-per-node)")
            device = f"cuda:{local_rank}"
    elif kind == "cuda" and not index:
        device = "cuda:0"
    if kind == "cuda" and index and int(index) >= cuda_devices:
        raise EvalError(f"--model_args device={device}: this machine has {cuda_devices} GPU(s) "
                        f"(cuda:0..cuda:{cuda_devices - 1})")
    if dtype == "auto":
        dtype = "bfloat16" if kind == "cuda" else None
    return Placement(rank=rank, world_size=world_size, local_rank=local_rank, device=device, dtype=dtype, note=note)
