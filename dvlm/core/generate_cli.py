"""``dvlm generate``: run a sampler preset (or spec file) on a checkpoint from the command line.

Wired into the CLI with ``app.command("generate")(generate_command)`` in ``dvlm/core/cli.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from dvlm.core.errors import SamplerError


def parse_input_ids(text: str) -> list[list[int]]:
    """``"1,2,3"`` -> ``[[1, 2, 3]]``; rows separated by ``;`` (``"1,2;3,4,5"``) form a ragged batch."""
    try:
        rows = [[int(tok) for tok in row.split(",") if tok.strip()] for row in text.split(";")]
    except ValueError:
        raise SamplerError(f"--input-ids {text!r}: expected comma-separated integers, rows separated by ';'") from None
    if not rows or not all(rows):
        raise SamplerError(f"--input-ids {text!r}: every row needs at least one token id")
    return rows


def generate_command(
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="Checkpoint folder (any supported layout) or hub id.")],
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="Prompt text (needs tokenizer files).")] = None,
    image: Annotated[
        Optional[List[Path]], typer.Option("--image", help="Image file(s) for a vision-language model.")] = None,
    input_ids: Annotated[
        Optional[str], typer.Option("--input-ids", help="Token ids '1,2,3'; ';' separates rows.")] = None,
    sampler: Annotated[str, typer.Option("--sampler", help="Preset name or sampler spec file.")] = "llada-reference",
    set_: Annotated[
        Optional[List[str]], typer.Option("--set", help="Override a sampler field: key=value (repeatable).")] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print token ids, text, NFE and tokens per forward as JSON.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Tokenise --prompt as given, without the chat template.")] = False,
    dtype: Annotated[
        Optional[str], typer.Option("--dtype", help="float32, bfloat16 or float16 (default: as stored).")] = None,
    text_after_image: Annotated[Optional[str], typer.Option(
        "--text-after-image", help="keep | llava_inference: the \\n after <image> (default: the layout's).")] = None,
) -> None:
    """Generate an answer with a diffusion sampler."""
    import dvlm
    from dvlm.core.generation import generate
    from dvlm.core.sampler_specs import resolve_sampler

    if (prompt is None) == (input_ids is None):
        raise SamplerError("pass exactly one of --prompt TEXT or --input-ids 1,2,3")
    params = resolve_sampler(sampler, set_ or [])  # spec mistakes surface before the model loads
    model = dvlm.load_pretrained(checkpoint, dtype=dtype, text_after_image=text_after_image)
    if prompt is not None and model.tokenizer is None:  # a folder's own tokenizer comes with its chat template
        raise SamplerError(
            f"{checkpoint} has no tokenizer files (tokenizer.json, tokenizer_config.json, ...), so --prompt cannot be "
            "encoded; pass --input-ids or add the tokenizer files to the folder"
        )
    result = generate(
        model, parse_input_ids(input_ids) if input_ids is not None else None, prompt=prompt,
        images=image or None, sampler=params, raw=raw,
    )
    if json_out:
        print(json.dumps({
            "token_ids": result.token_ids.tolist(), "text": result.text, "nfe": result.nfe,
            "tokens_per_forward": result.tokens_per_forward, "answer_lengths": result.answer_lengths,
            "wall_time_s": result.wall_time_s,
        }))
        return
    for b, row in enumerate(result.token_ids.tolist()):
        print(result.text[b] if result.text is not None else " ".join(map(str, row[: result.answer_lengths[b]])))
    typer.echo(f"nfe={result.nfe} tokens_per_forward={result.tokens_per_forward:.3f} "
               f"wall_time_s={result.wall_time_s:.3f}", err=True)
