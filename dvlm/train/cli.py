"""``dvlm train SPEC``: run a training spec (also under ``torchrun``, one process per device)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def load_train_spec(path: Path, overrides: list[str] | None = None):
    """Read a ``spec: train`` document and apply ``key.sub=value`` overrides before validating."""
    from dvlm.core.errors import SpecError
    from dvlm.core.sampler_specs import parse_overrides
    from dvlm.core.specs import parse_spec, read_document

    path = resolve_recipe(path)
    data = read_document(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec must be a mapping, got {type(data).__name__}")
    for key, value in parse_overrides(overrides or []):
        node = data
        *parents, leaf = key.split(".")
        for name in parents:
            child = node.setdefault(name, {})
            if not isinstance(child, dict):
                raise SpecError(f"--set {key}: '{name}' is a plain value, it has no sub-fields")
            node = child
        node[leaf] = value
    return parse_spec(data, source=str(path), as_type="train")


def resolve_recipe(path: Path) -> Path:
    """A spec file, or the name of a shipped recipe (``dvlm/presets/recipes/<name>.yaml``)."""
    from dvlm.core.errors import SpecError
    from dvlm.presets import RECIPES

    if path.exists() or path.suffix:
        return path
    recipe = RECIPES / f"{path}.yaml"
    if recipe.is_file():
        return recipe
    names = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    raise SpecError(f"{path}: no such spec file, and no recipe of that name; recipes: {', '.join(names)}")


def train_command(
    spec: Annotated[Path, typer.Argument(
        help="A training spec file (YAML or JSON, `spec: train`) or a recipe name (e.g. lavida-stage2).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the latest checkpoint in out_dir.")] = False,
    stop_after: Annotated[Optional[int], typer.Option(
        "--stop-after", min=1,
        help="Stop after N steps in this call, checkpointing first (e.g. a job time limit).")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a spec field: --set optimizer.lr=1e-4 (repeatable).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
    plan: Annotated[bool, typer.Option(
        "--plan", help="Print the per-process memory of this run (model built on the meta device) and exit; "
                       "world size from --set world_size=N.")] = False,
    export: Annotated[Optional[Path], typer.Option(
        "--export", help="Write the latest checkpoint of out_dir as one dvlm checkpoint in this folder "
                         "(gathers FSDP shards, merges LoRA adapters) and exit.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="With --export: replace the checkpoint the folder already holds.")] = False,
) -> None:
    """Train a model on LLaVA-format data with masked-diffusion (uniform or complementary) masking.

    Multi-process: ``torchrun --nproc-per-node N -m dvlm train SPEC`` (gloo on CPU, NCCL on GPU).
    """
    from dvlm.core.specs import spec_hash
    from dvlm.train.loop import train

    parsed = load_train_spec(spec, overrides)
    if plan:
        from dvlm.train.plan import memory_plan

        report = memory_plan(parsed)
        typer.echo(report.render())
        return
    if export is not None:
        from dvlm.train.export import export as export_checkpoint

        typer.echo(f"exported {export_checkpoint(parsed, export, overwrite=overwrite)}")
        return
    result = train(parsed, resume=resume, stop_after=stop_after, progress=progress)
    if result.checkpoint is not None:
        import os

        if int(os.environ.get("RANK", "0")) == 0:
            evals = ", ".join(f"{k} {v:.4f}" for k, v in result.eval.items())
            typer.echo(f"spec {spec_hash(parsed)[:12]}: step {result.step}/{result.total_steps}, loss {result.last_loss:.4f}"
                       f"{', ' + evals if evals else ''}; checkpoint {result.checkpoint} "
                       f"({result.wall_time_s:.1f} s)")
