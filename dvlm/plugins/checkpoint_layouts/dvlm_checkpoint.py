"""dvlm's own checkpoint format as a layout kind (the format itself is core's: ``dvlm.core.checkpoint``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dvlm.core.checkpoint import read_dvlm_checkpoint, save_pretrained
from dvlm.core.checkpoint_config import SPEC
from dvlm.core.interfaces import CheckpointReading


class DvlmCheckpointLayout:
    """``spec.json`` + ``model.safetensors`` (+ index) + tokenizer files."""

    name = "dvlm"
    summary = "a dvlm checkpoint (spec.json + model.safetensors + tokenizer files)"

    def __init__(self, params: Any = None) -> None:
        self.params = params

    def detect(self, folder: Path) -> bool:
        return (folder / SPEC).is_file()

    def read(self, folder: Path) -> CheckpointReading:
        return read_dvlm_checkpoint(folder)

    def write(self, model: Any, folder: Path, max_shard_bytes: int = 4 << 30, overwrite: bool = False) -> None:
        save_pretrained(model, folder, max_shard_bytes=max_shard_bytes, overwrite=overwrite)
