"""Reading and writing (sharded) safetensors files without holding a second copy of the weights.

Reading parses the safetensors header (8-byte little-endian length + JSON) and ``readinto``s each
tensor's bytes straight into the tensor that will become the parameter: no memory map whose pages
count against the process, no intermediate buffer (only a per-tensor temporary when the dtype
changes). Every way a shard can be wrong gives one message naming the file.

Writing splits a state dict into shards of at most ``max_shard_bytes``, writes each file (plus
``model.safetensors.index.json`` when there are several) under a temporary name and renames it into
place, so an interrupted save never leaves a half-written file under a real name.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from safetensors.torch import save_file

from dvlm.core.errors import CheckpointError

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives: file, dtype, shape and byte range (absolute offsets)."""

    file: Path
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


def shard_files(folder: Path) -> list[Path]:
    """The weight files of a folder: those named by the index, or the single ``model.safetensors``."""
    index = folder / INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise CheckpointError(f"{index}: not a safetensors index (expected a JSON object with 'weight_map')") from None
        files = [folder / name for name in dict.fromkeys(weight_map.values())]
        for file in files:
            if not file.is_file():
                raise CheckpointError(f"{file}: shard listed in {INDEX} is missing; re-download or re-save the checkpoint")
        return files
    single = folder / WEIGHTS
    if single.is_file():
        return [single]
    raise CheckpointError(f"{folder}: no weights found (neither {WEIGHTS} nor {INDEX})")


def read_header(file: Path) -> list[TensorEntry]:
    """Parse a safetensors header; a short or malformed file is reported as truncated or corrupt."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{file}: truncated ({size} bytes, not even a safetensors header)")
        (header_len,) = struct.unpack("<Q", head)
        if 8 + header_len > size:
            raise CheckpointError(f"{file}: truncated (header says {header_len} bytes, file has {size})")
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{file}: corrupt safetensors header (not JSON)") from None
    start = 8 + header_len
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = _DTYPES[info["dtype"]], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{file}: corrupt header entry for tensor '{name}': {info!r}") from None
        entries.append(TensorEntry(file, name, dtype, shape, start + begin, start + end))
    needed = max((e.end for e in entries), default=start)
    if needed > size:
        raise CheckpointError(
            f"{file}: truncated (tensors need {needed} bytes, file has {size}); re-download or re-save it"
        )
    return entries


def read_tensor(f, entry: TensorEntry, dtype: torch.dtype | None, device: torch.device | str) -> torch.Tensor:
    """Read one tensor from the open file ``f`` into fresh memory, converted to ``dtype`` on ``device``."""
    tensor = torch.empty(entry.shape, dtype=entry.dtype)
    nbytes = tensor.numel() * tensor.element_size()
    if nbytes != entry.end - entry.begin:
        raise CheckpointError(
            f"{entry.file}: tensor '{entry.name}' holds {entry.end - entry.begin} bytes, "
            f"but shape {list(entry.shape)} of {entry.dtype} needs {nbytes}"
        )
    buffer = memoryview(tensor.reshape(-1).view(torch.uint8).numpy())
    f.seek(entry.begin)
    done = 0
    while done < nbytes:
        got = f.readinto(buffer[done:])
        if not got:
            raise CheckpointError(f"{entry.file}: truncated while reading '{entry.name}'")
        done += got
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor.to(device)


def shards(state: dict[str, torch.Tensor], max_shard_bytes: int) -> Iterator[dict[str, torch.Tensor]]:
    """Split a state dict, in order, into groups of at most ``max_shard_bytes`` (one tensor may exceed it)."""
    group: dict[str, torch.Tensor] = {}
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if group and size + nbytes > max_shard_bytes:
            yield group
            group, size = {}, 0
        group[name] = tensor
        size += nbytes
    yield group


def replace_atomically(path: Path, write) -> None:
    """``write(tmp_path)`` then rename over ``path``: readers see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_sharded(state: dict[str, torch.Tensor], folder: Path, max_shard_bytes: int) -> list[Path]:
    """Write ``state`` as safetensors shards (+ index if more than one); returns the files written."""
    groups = list(shards(state, max_shard_bytes))
    names = [WEIGHTS] if len(groups) == 1 else [
        f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))
    ]
    for name, group in zip(names, groups):
        tensors = {k: v.detach().contiguous().cpu() for k, v in group.items()}
        replace_atomically(folder / name, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    written = [folder / name for name in names]
    if len(groups) > 1:
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": {k: n for n, g in zip(names, groups) for k in g}}
        replace_atomically(folder / INDEX, lambda tmp: tmp.write_text(json.dumps(index, indent=2)))
        written.append(folder / INDEX)
    return written
