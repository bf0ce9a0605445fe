"""``dvlm inspect DIR``: what dvlm makes of a checkpoint folder, without loading its weights: the detected layout,
the stored dtype and where it came from, each special token with its source file, the tokenizer, the chat template
(and the prompt it renders), the image settings, and every quirk handled. Wired into the CLI in
``dvlm/core/cli.py``."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def inspect_command(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint folder (any supported layout) or hub id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show the detected layout, dtype, special tokens (with their source), tokenizer, chat template, image
    settings and quirks of a checkpoint folder."""
    from dvlm.core.checkpoint import detect_layout
    from dvlm.core.hub import resolve_folder
    from dvlm.core.vlm import DiffusionVLM

    folder = resolve_folder(checkpoint)
    kind, layout = detect_layout(folder)
    reading = layout.read(folder)
    spec = reading.spec
    backbone = spec.backbone
    tokenizer = reading.tokenizer
    example = None
    if tokenizer is not None and spec.chat_template is not None:
        from dvlm.core.plugins import get_registry

        template = get_registry().build("chat_templates", spec.chat_template)
        example = DiffusionVLM.render_with(template, tokenizer, "What is 2+2?")
    report = {
        "folder": str(folder), "layout": kind, "summary": layout.summary,
        "backbone": backbone.kind, "dtype": backbone.dtype, "dtype_source": reading.dtype_source,
        "special_tokens": {role: {"id": getattr(backbone, role, None), "source": reading.special_token_sources.get(role)}
                           for role in ("mask_token_id", "eos_token_id", "pad_token_id", "eot_token_id",
                                        "bos_token_id")},
        "tokenizer": None if tokenizer is None else f"{type(tokenizer).__name__} ({len(tokenizer)} tokens)",
        "chat_template": None if spec.chat_template is None else spec.chat_template.model_dump(mode="json"),
        "example_prompt": example,
        "text_after_image": spec.text_after_image,
        "vision_encoder": None if spec.vision_encoder is None else spec.vision_encoder.model_dump(mode="json"),
        "image_layout": None if spec.image_layout is None else spec.image_layout.model_dump(mode="json"),
        "quirks": list(reading.quirks),
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        if key == "quirks":
            typer.echo("quirks handled:" + ("" if value else " none"))
            for quirk in value:
                typer.echo(f"  - {quirk}")
        elif isinstance(value, dict):
            typer.echo(f"{key}:")
            for name, item in value.items():
                typer.echo(f"  {name}: {item}")
        else:
            typer.echo(f"{key}: {value!r}" if key == "example_prompt" else f"{key}: {value}")
