"""The core of the ``dvlm`` command line: ``plugins``, ``schema``, ``validate``, ``generate``, ``convert`` and
``inspect``. ``dvlm/cli.py`` adds the commands of the packages core never imports (train, bench, data, serve)
and is the console script. Subcommands import their heavy dependencies lazily, so that ``dvlm --help`` stays
fast and imports neither transformers, timm nor open_clip."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from dvlm.core.convert_cli import convert_command
from dvlm.core.errors import DvlmError
from dvlm.core.generate_cli import generate_command
from dvlm.core.inspect_cli import inspect_command

app = typer.Typer(
    name="dvlm",
    help="Masked-diffusion vision-language models: plugins, specs, generation, training, benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


@app.command("plugins")
def plugins_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """List every family and kind with the plugin, distribution and version that supplied it."""
    from dvlm.core.plugins import get_registry
    from dvlm.core.registry import FAMILIES

    registry = get_registry()
    rows = [
        {"family": e.family, "kind": e.kind, "aliases": list(e.aliases), "plugin": e.origin.plugin,
         "distribution": e.origin.distribution, "version": e.origin.version}
        for e in registry.entries()
    ]
    if as_json:
        print(json.dumps({"kinds": rows, "failures": registry.failures}, indent=2))
        return
    table = Table(title="dvlm plugins")
    for column in ("family", "kind", "origin", "version", "plugin"):
        table.add_column(column, overflow="fold")  # narrow terminals wrap names instead of cutting them
    for family in FAMILIES:
        for row in (r for r in rows if r["family"] == family):
            kind = row["kind"] + (f" ({', '.join(row['aliases'])})" if row["aliases"] else "")
            table.add_row(family, kind, row["distribution"], row["version"], row["plugin"])
    console.print(table)
    for name, error in registry.failures.items():
        errors.print(f"[red]plugin '{name}' failed to load:[/red] {error}")


@app.command("schema")
def schema_command(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of every spec type, including the installed plugins' kinds."""
    from dvlm.core.specs import json_schema

    text = json.dumps(json_schema(), indent=2)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n")
        console.print(f"wrote {out}")


@app.command("validate")
def validate_command(
    file: Annotated[Path, typer.Argument(help="A spec file (YAML or JSON).")],
) -> None:
    """Validate a spec file; print its hash (exit 0) or the error (exit 1)."""
    from dvlm.core.specs import load_spec, spec_hash

    spec = load_spec(file)
    print(spec_hash(spec))


app.command("generate")(generate_command)
app.command("convert")(convert_command)
app.command("inspect")(inspect_command)


def run_app(typer_app: typer.Typer) -> None:
    """Run a command-line app: user errors print one message, no traceback."""
    try:
        typer_app()
    except DvlmError as err:
        errors.print(f"[bold red]error:[/bold red] {err}", highlight=False, soft_wrap=True)
        sys.exit(1)
