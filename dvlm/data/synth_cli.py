"""``dvlm data synth-shapes``: write the synthetic shapes dataset (see ``synth_shapes.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(name="data", help="Datasets: generate the built-in synthetic data.", no_args_is_help=True)


@data_app.command("synth-shapes")
def synth_shapes_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write (created if missing).")],
    n: Annotated[int, typer.Option("--n", min=3, help="Number of images over all splits (80/10/10).")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed writes identical files.")] = 0,
    size: Annotated[int, typer.Option("--size", min=16, help="Image side in pixels.")] = 64,
) -> None:
    """Write LLaVA-format JSON and PNG images of coloured shapes, with questions, answers and captions."""
    from dvlm.data.synth_shapes import write_synth_shapes

    counts = write_synth_shapes(out, n=n, seed=seed, size=size)
    typer.echo(f"wrote {n} images to {out}: " + ", ".join(f"{k} {v} records" for k, v in counts.items()))
