"""``dvlm serve --checkpoint DIR``: the denoising view (``dvlm/serve/app.py``) on a local port.

Wired into the CLI with ``app.command("serve")(serve_command)`` in ``dvlm/cli.py``; the web stack is
imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def serve_command(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint folder with its tokenizer files.")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 7860,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, ...")] = "cpu",
    sampler: Annotated[Optional[list[str]], typer.Option(
        "--sampler", help="Preset or sampler spec file the page offers (repeatable; the first is selected). The page "
                          "offers only these and the presets.")] = None,
    overrides: Annotated[str, typer.Option(
        "--set", help="Overrides shown when the page opens, e.g. 'gen_length=32 steps=32'.")] = "",
    max_gen_length: Annotated[int, typer.Option("--max-gen-length", min=1,
                                                help="Largest gen_length / steps a page request may ask for.")] = 1024,
) -> None:
    """Serve a page to upload an image, write a prompt, pick a sampler and watch the answer denoise."""
    from dvlm.core.errors import DvlmError

    try:
        import uvicorn

        from dvlm.serve.app import create_app, load_demo
    except ImportError as err:
        raise DvlmError(f"dvlm serve needs the serve extra ({err.name} is missing): pip install 'dvlm[serve]'") from None
    demo = load_demo(checkpoint, device=device, sampler=sampler or ["llada-reference"], overrides=overrides,
                     max_gen_length=max_gen_length)
    typer.echo(f"dvlm serve: {checkpoint} on http://{host}:{port}  (Ctrl+C to stop)")
    uvicorn.run(create_app(demo), host=host, port=port, log_level="warning")
