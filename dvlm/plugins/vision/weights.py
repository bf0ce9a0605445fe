"""Reading local weights and configs for the vision encoders (safetensors only, never pickle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file

from dvlm.core.errors import CheckpointError


def read_safetensors(path: str | Path, names: tuple[str, ...] = ("model.safetensors",)) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file, or of a folder holding one of ``names`` (or its sharded
    ``<name>.index.json``)."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = []
        for name in names:
            index = path / f"{name}.index.json"
            if (path / name).is_file():
                files = [path / name]
            elif index.is_file():
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
                files = [path / shard for shard in shards]
            if files:
                break
        if not files:
            raise CheckpointError(f"{path}: no {' or '.join(names)} (safetensors) found in this folder.")
    else:
        raise CheckpointError(f"{path}: no such file or folder; check the `pretrained` path.")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            tensors.update(load_file(str(file)))
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"{file}: not a readable safetensors file ({err}).") from None
    return tensors


def pretrained_path(params) -> Path | None:
    """The encoder's ``pretrained`` path, checked to exist before anything is built (None for random init)."""
    if params.init != "pretrained":
        return None
    path = Path(params.pretrained)
    if not path.exists():
        raise CheckpointError(f"vision encoder '{params.kind}': pretrained={path}: no such file or folder; "
                              f"check the path.")
    return path


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read ({err.strerror}).") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} line {err.lineno}: invalid JSON ({err.msg}).") from None


def check_architecture(where: str, expected: Mapping[str, Any], found: Mapping[str, Any]) -> None:
    """Pretrained weights must fit the spec: every differing field is named, with both values."""
    diffs = [f"{k}: spec {expected[k]!r} vs weights {found[k]!r}" for k in expected if k in found
             and found[k] != expected[k]]
    if diffs:
        raise CheckpointError(
            f"{where}: the pretrained weights do not match the spec's architecture ({'; '.join(diffs)}). "
            f"Set these fields in the spec to the weights' values."
        )


def load_exact(module: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """``load_state_dict`` with a readable message instead of torch's wall of key names and shapes."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} with another shape (e.g. {'; '.join(shapes[:3])})")
        raise CheckpointError(f"{where}: the weights do not fit the model: {', '.join(parts)}.")
    module.load_state_dict(state, strict=True)
