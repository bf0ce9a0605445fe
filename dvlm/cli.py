"""The ``dvlm`` console script: core's commands (``dvlm/core/cli.py``) plus those of the packages core never
imports: ``train``, ``bench``, ``data`` and ``serve``."""

from __future__ import annotations

from dvlm.bench.cli import bench_command
from dvlm.core.cli import app, run_app
from dvlm.data.synth_cli import data_app
from dvlm.serve.cli import serve_command
from dvlm.train.cli import train_command

app.command("train")(train_command)
app.add_typer(data_app, name="data")
app.command("bench")(bench_command)
app.command("serve")(serve_command)


def main() -> None:
    """Console-script entry point."""
    run_app(app)


if __name__ == "__main__":
    main()
