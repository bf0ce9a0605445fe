"""Reading a published folder's JSON files with errors that name the file and the field.

Checkpoint layouts (``dvlm/plugins/checkpoint_layouts``) read ``config.json`` through :class:`ConfigFile`;
its ``dtype()`` is the stored dtype (``torch_dtype``, else the safetensors headers: LLaDA-8B's OLMo config has
no ``torch_dtype`` and its shards are bf16).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvlm.core.dtypes import DTYPES
from dvlm.core.errors import CheckpointError

CONFIG = "config.json"
GENERATION_CONFIG = "generation_config.json"
SPEC = "spec.json"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a syntax error names the file, line and column."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} line {err.lineno}, column {err.colno}: invalid JSON: {err.msg}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_optional_json(path: Path) -> dict[str, Any]:
    """``read_json``, or ``{}`` when the file does not exist."""
    return read_json(path) if path.is_file() else {}


def header_dtype(folder: Path) -> str | None:
    """The most common floating dtype among the stored tensors (read from the safetensors headers only); None
    for a folder without weights (a config alone, as ``dvlm train --plan`` reads)."""
    from dvlm.core.safetensors_io import INDEX, WEIGHTS, read_header, shard_files

    if not (folder / WEIGHTS).is_file() and not (folder / INDEX).is_file():
        return None

    names = {dtype: name for name, dtype in DTYPES.items()}
    counts = Counter(names[entry.dtype] for file in shard_files(folder) for entry in read_header(file)
                     if entry.dtype in names)
    return counts.most_common(1)[0][0] if counts else None


@dataclass(frozen=True)
class ConfigFile:
    """A folder's config (``config.json`` or ``spec.json``), read with errors that name file and field."""

    folder: Path
    name: str
    data: dict[str, Any]

    @classmethod
    def read(cls, folder: Path, name: str = CONFIG) -> "ConfigFile":
        return cls(folder, name, read_json(folder / name))

    @property
    def path(self) -> Path:
        return self.folder / self.name

    def require(self, field: str) -> Any:
        if self.data.get(field) is None:
            raise CheckpointError(f"{self.path}: missing field '{field}', which is needed to build the model")
        return self.data[field]

    def get(self, field: str, default: Any) -> Any:
        value = self.data.get(field)
        return default if value is None else value

    def expect(self, **supported: Any) -> None:
        """Fields that, when present, must have the one value dvlm implements."""
        for field, value in supported.items():
            if field in self.data and self.data[field] is not None and self.data[field] != value:
                raise CheckpointError(
                    f"{self.path}: {field}={self.data[field]!r} is not supported; dvlm implements {field}={value!r}"
                )

    def dtype(self) -> str:
        """The stored dtype: ``torch_dtype`` when the config names one, else the dtype of the stored tensors
        (safetensors headers), else float32."""
        value = self.data.get("torch_dtype") or self.data.get("dtype")
        if value in DTYPES:
            return value
        return header_dtype(self.folder) or "float32"

    def dtype_source(self) -> str:
        """Where ``dtype()`` came from, for ``dvlm inspect``."""
        value = self.data.get("torch_dtype") or self.data.get("dtype")
        return f"{self.name} torch_dtype" if value in DTYPES else "safetensors headers"
