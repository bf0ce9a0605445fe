"""``dvlm convert SRC DST``: any supported checkpoint folder -> a dvlm checkpoint.

The source is read with ``dvlm.load_pretrained`` (LLaDA, LLaDA-V, Dream, LaViDa-LLaDA, LaViDa-Dream or a dvlm
folder); the destination gets ``spec.json`` + ``model.safetensors`` (+ the tokenizer files), which
``load_pretrained`` reloads to the same model. Wired into the CLI with
``app.command("convert")(convert_command)`` in ``dvlm/core/cli.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dvlm.core.errors import CheckpointError


def convert_command(
    source: Annotated[Path, typer.Argument(help="Checkpoint folder to read (any supported layout).")],
    destination: Annotated[Path, typer.Argument(help="Folder to write the dvlm checkpoint into.")],
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="float32, bfloat16 or float16 (default: as stored).")] = None,
) -> None:
    """Convert a checkpoint folder into a dvlm checkpoint (spec.json + model.safetensors + tokenizer)."""
    from dvlm.core.checkpoint import load_pretrained, save_pretrained

    source, destination = Path(source), Path(destination)
    if destination.resolve() == source.resolve():
        raise CheckpointError(f"{destination}: the destination must differ from the source folder")
    model = load_pretrained(source, dtype=dtype)
    save_pretrained(model, destination)
    typer.echo(f"wrote {destination} ({sum(p.numel() for p in model.parameters()):,} parameters)")
