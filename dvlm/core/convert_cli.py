"""``dvlm convert SRC DST [--to LAYOUT]``: any supported checkpoint folder -> a dvlm checkpoint, or into a
published layout (train with dvlm, publish as a LaViDa or LLaDA-V folder).

The source is read with ``dvlm.load_pretrained`` (any registered checkpoint layout, or a hub id) in its stored
dtype (``--dtype`` to change it); the destination is written by the registered layout ``--to`` (default
``dvlm``: ``spec.json`` + ``model.safetensors`` + the tokenizer files), which ``load_pretrained`` reloads to the
same model. A destination that already holds a checkpoint is refused unless ``--overwrite``. Wired into the CLI with ``app.command("convert")(convert_command)`` in ``dvlm/core/cli.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dvlm.core.errors import CheckpointError


def convert_command(
    source: Annotated[str, typer.Argument(help="Checkpoint folder (any supported layout) or hub id to read.")],
    destination: Annotated[Path, typer.Argument(help="Folder to write into.")],
    to: Annotated[str, typer.Option("--to", help="Checkpoint layout to write (see `dvlm plugins`).")] = "dvlm",
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="float32, bfloat16 or float16 (default: as stored).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace the checkpoint the destination already holds (refused without it).")] = False,
) -> None:
    """Convert a checkpoint folder into a dvlm checkpoint, or into another registered checkpoint layout."""
    from dvlm.core.checkpoint import check_destination, get_layout, load_pretrained

    destination = Path(destination)
    if destination.resolve() == Path(source).resolve():
        raise CheckpointError(f"{destination}: the destination must differ from the source folder")
    layout = get_layout(to)  # an unknown layout or a destination holding a checkpoint fails before anything loads
    check_destination(destination, overwrite)
    model = load_pretrained(source, dtype=dtype)
    layout.write(model, destination, overwrite=overwrite)
    typer.echo(f"wrote {destination} as '{to}' ({sum(p.numel() for p in model.parameters()):,} parameters)")
