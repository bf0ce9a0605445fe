"""``dvlm serve --checkpoint DIR``: the denoising view (``dvlm/serve/app.py``) on a local port.

Wired into the CLI with ``app.command("serve")(serve_command)`` in ``dvlm/cli.py``; the web stack is
imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve_command(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint folder with its tokenizer files.")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 7860,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, ...")] = "cpu",
    sampler: Annotated[str, typer.Option("--sampler", help="Preset selected when the page opens.")] = "llada-reference",
    overrides: Annotated[str, typer.Option("--set", help="Overrides shown when the page opens, e.g. 'gen_length=32 steps=32'.")] = "",
) -> None:
    """Serve a page to upload an image, write a prompt, pick a sampler and watch the answer denoise."""
    from dvlm.core.errors import DvlmError

    try:
        import uvicorn

        from dvlm.serve.app import create_app, load_demo
    except ImportError as err:
        raise DvlmError(f"dvlm serve needs the serve extra ({err.name} is missing): pip install 'dvlm[serve]'") from None
    demo = load_demo(checkpoint, device=device, sampler=sampler, overrides=overrides)
    typer.echo(f"dvlm serve: {checkpoint} on http://{host}:{port}  (Ctrl+C to stop)")
    uvicorn.run(create_app(demo), host=host, port=port, log_level="warning")
