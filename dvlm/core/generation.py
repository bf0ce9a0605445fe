"""Generation: the public ``dvlm.generate`` and what a sampler run exchanges with it.

``generate(model, input_ids=..., sampler="lavida-coco")`` resolves the sampler spec (a preset name, a spec file,
a dict or a params object, plus ``--set``-style overrides), builds the sampler through the registry, runs its
denoising loop on the model's backbone and returns a ``GenerationResult``. Every step yields a ``StepEvent``
(which positions were committed, with which confidence), passed to ``on_step`` and kept with ``trace=True``.

Multimodal callers build a ``PromptBatch`` with ``inputs_embeds`` (image features spliced into the prompt)
and call ``run_sampler``; the text path below is that plus tokenisation and padding.

Shapes: B batch, P prompt length, G answer length, D width.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from dvlm.core.errors import DvlmError, PromptError, SamplerError
from dvlm.core.input_checks import check_prompt

INFILL_ROLES = ("fim", "fim_filler")
"""``SpecialTokens.extra`` roles of LaViDa-FIM's markers ([FIM], [S]): kept in ``token_ids``, dropped from text."""


@dataclass(frozen=True)
class PromptBatch:
    """What a sampler conditions on. Ragged prompts are left-padded (``attention_mask`` 0 on padding)."""

    input_ids: torch.Tensor | None
    """``[B, P]`` prompt ids; may be None when ``inputs_embeds`` carries the whole prompt."""
    attention_mask: torch.Tensor | None = None
    """``[B, P]`` 1 = real token, 0 = left padding; None = no padding."""
    inputs_embeds: torch.Tensor | None = None
    """``[B, P, D]`` prompt embeddings (e.g. with image features spliced in); override the ids' embeddings."""
    draft: torch.Tensor | None = None
    """``[B, <= G]`` infill draft for the start of the answer: fixed tokens, and the mask id where to generate."""


@dataclass
class StepEvent:
    """One denoising step, for streaming and visualisation. Tensors are ``[B, G]`` over the answer window."""

    step: int
    """Index of the step within this generation."""
    block: int
    """Semi-autoregressive block the step worked on."""
    nfe: int
    """Forward passes so far (prefill and CFG passes included)."""
    committed: torch.Tensor
    """bool: positions committed at this step."""
    confidence: torch.Tensor
    """float: confidence of each committed position (NaN elsewhere)."""
    tokens: torch.Tensor
    """The answer after this step (the mask id where still masked)."""
    kv_rows: int = 0
    """Positions whose keys/values the forwards computed so far, summed over the batch (see
    ``GenerationResult.kv_rows_recomputed``)."""


@dataclass
class GenerationResult:
    """The answer and how it was obtained."""

    token_ids: torch.Tensor
    """``[B, G]`` answer ids; positions left masked by an early stop hold the pad id."""
    text: list[str] | None
    """Decoded answers up to the first end token (end tokens, padding, FIM markers and fillers removed);
    None without a tokenizer."""
    nfe: int
    """Forward passes of the backbone (a CFG step counts 2; a cache prefill counts 1)."""
    tokens_per_forward: float
    """Answer tokens per forward, averaged over the batch: ``mean(answer_lengths) / nfe``."""
    answer_lengths: list[int]
    """Per row: tokens up to and including the first end token (eot/eos), i.e. without end-of-sequence padding."""
    wall_time_s: float
    """Seconds spent in the sampler loop."""
    kv_rows_recomputed: float = 0.0
    """Positions whose keys/values the forwards computed, per answer (batch mean; prefill and CFG included):
    what a cache policy saves, e.g. (P + G) per step without a cache."""
    steps: list[StepEvent] | None = field(default=None, repr=False)
    """Every step's event when ``trace=True``."""


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Ragged prompts -> ``(ids [B, P], attention_mask [B, P] or None)``, padding on the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for b, row in enumerate(rows):
        if len(row):
            ids[b, width - len(row) :] = torch.as_tensor(list(row), dtype=torch.long)
        mask[b, width - len(row) :] = 1
    return ids, (None if bool(mask.all()) else mask)


def backbone_of(model: Any):
    """The backbone inside a composed model (``model.backbone``), or the model itself."""
    return getattr(model, "backbone", model)


def tokenizer_of(model: Any):
    return getattr(model, "tokenizer", None)


def answer_lengths(token_ids: torch.Tensor, end_ids: Sequence[int]) -> list[int]:
    """Per row: position of the first end token + 1, else G (end-of-sequence padding is not an answer)."""
    hit = torch.isin(token_ids, torch.tensor(list(end_ids), device=token_ids.device))
    first = torch.where(hit.any(-1), hit.to(torch.int64).argmax(-1) + 1, token_ids.shape[1])
    return first.tolist()


def decode(tokenizer, token_ids: torch.Tensor, lengths: Sequence[int], drop_ids: Sequence[int]) -> list[str]:
    """Text of each row up to its end token, without ``drop_ids`` (mask, padding, end tokens, FIM markers and
    fillers)."""
    texts = []
    for row, length in zip(token_ids.tolist(), lengths):
        kept = [t for t in row[:length] if t not in set(drop_ids)]
        texts.append(tokenizer.decode(kept, skip_special_tokens=True))
    return texts


def run_sampler(
    backbone,
    prompt: PromptBatch,
    sampler: Any,
    *,
    tokenizer=None,
    generator: torch.Generator | None = None,
    on_step: Callable[[StepEvent], None] | None = None,
    trace: bool = False,
) -> GenerationResult:
    """Build the sampler from resolved params (or use a built sampler) and run it to completion."""
    from dvlm.core.plugins import get_registry

    if not hasattr(sampler, "run"):
        sampler = get_registry().build("samplers", sampler)
    check_prompt(backbone, prompt, getattr(getattr(sampler, "params", None), "gen_length", 0))
    events: list[StepEvent] | None = [] if trace else None
    began = time.perf_counter()
    with torch.inference_mode():
        loop = sampler.run(backbone, prompt=prompt, generator=generator)
        while True:
            try:
                event = next(loop)
            except StopIteration as finished:
                canvas = finished.value
                break
            if on_step is None and events is None:
                continue  # nobody listens: the event is never built
            event = event.resolve() if callable(getattr(event, "resolve", None)) else event
            if on_step is not None:
                on_step(event)
            if events is not None:
                events.append(event)
    wall = time.perf_counter() - began
    if bool(getattr(canvas, "nan_logits", False)):
        raise SamplerError(
            "the backbone returned NaN logits, so no token could be chosen; the weights or the prompt embeddings "
            "hold NaN/inf (check the checkpoint, or run float32/bfloat16 if float16 overflows)"
        )
    tokens = backbone.special_tokens
    ids = canvas.answer.masked_fill(canvas.answer == tokens.mask_id, tokens.pad_id)  # [B, G]
    end_ids = [t for t in (tokens.eot_id, tokens.eos_id) if t is not None]
    lengths = answer_lengths(ids, end_ids)
    text = None
    if tokenizer is not None:
        drop = [tokens.mask_id, tokens.pad_id, *end_ids, *(v for k, v in tokens.extra.items() if k in INFILL_ROLES)]
        text = decode(tokenizer, ids, lengths, drop)
    nfe = max(canvas.nfe, 1)
    return GenerationResult(
        token_ids=ids, text=text, nfe=canvas.nfe, tokens_per_forward=sum(lengths) / (len(lengths) * nfe),
        answer_lengths=lengths, wall_time_s=wall, steps=events,
        kv_rows_recomputed=getattr(canvas, "kv_rows_recomputed", 0) / max(len(lengths), 1),
    )


def generate(
    model: Any,
    input_ids: torch.Tensor | Sequence[Sequence[int]] | None = None,
    *,
    attention_mask: torch.Tensor | None = None,
    prompt: str | Sequence[str] | None = None,
    images: Sequence[Any] | None = None,
    draft: torch.Tensor | Sequence[int] | None = None,
    sampler: Any = "llada-reference",
    overrides: Sequence[str] | Mapping[str, Any] = (),
    generator: torch.Generator | None = None,
    on_step: Callable[[StepEvent], None] | None = None,
    trace: bool = False,
    tokenizer: Any = None,
    raw: bool = False,
) -> GenerationResult:
    """Generate answers with a diffusion sampler.

    ``input_ids``: ``[B, P]`` tensor (left-padded, with ``attention_mask``) or a list of ragged id lists;
    ``prompt``: text (needs a tokenizer attached to the model); ``draft``: an infill draft for the answer;
    ``sampler``: preset name, spec file, dict or params; ``overrides``: ``["steps=16", "cache=prefix"]``;
    ``tokenizer``: encodes ``prompt`` and decodes ``text`` (default: ``model.tokenizer`` if any);
    ``raw``: tokenise ``prompt`` as given, without the model's chat template.
    """
    from dvlm.core.sampler_specs import resolve_sampler

    backbone = backbone_of(model)
    tokenizer = tokenizer if tokenizer is not None else tokenizer_of(model)
    params = resolve_sampler(sampler, overrides)
    own_tokenizer = getattr(model, "tokenizer", None) is not None or tokenizer is None
    if prompt is not None and input_ids is None and hasattr(model, "prompt_batch") and own_tokenizer:
        # dvlm.core.vlm.DiffusionVLM (unless only the caller brings a tokenizer: then the text path below):
        # chat template, <image> placeholders, image features spliced into the prompt embeddings
        with torch.inference_mode():  # the vision forward happens here
            batch = model.prompt_batch(prompt, images, gen_length=getattr(params, "gen_length", 0), draft=draft,
                                       raw=raw)
        return run_sampler(backbone, batch, params, tokenizer=tokenizer, generator=generator, on_step=on_step,
                           trace=trace)
    if images:
        raise DvlmError("images= needs prompt= text and a vision-language model (dvlm.build of a spec with a "
                        "vision_encoder, or dvlm.load_pretrained of a LaViDa / LLaDA-V folder)")
    if (prompt is None) == (input_ids is None):
        raise SamplerError("pass exactly one of prompt= (text) or input_ids= (token ids)")
    if prompt is not None:
        if tokenizer is None:
            raise SamplerError("this model has no tokenizer, so prompt= text cannot be encoded; pass input_ids= "
                               "or load a checkpoint that includes tokenizer files")
        from dvlm.core.tokenizer import encode

        input_ids = [encode(tokenizer, p) for p in ([prompt] if isinstance(prompt, str) else prompt)]
    if not isinstance(input_ids, torch.Tensor):
        flat = len(input_ids) > 0 and isinstance(input_ids[0], int)  # one prompt given as a plain list
        rows = [list(input_ids)] if flat else [list(r) for r in input_ids]
        if not rows or not all(rows):
            raise PromptError("input_ids must hold at least one prompt, each of at least one token "
                              f"(got {len(rows)} prompts, lengths {[len(r) for r in rows]})")
        input_ids, attention_mask = left_pad(rows, backbone.special_tokens.pad_id)
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    device = next(iter(backbone.parameters()), torch.empty(0)).device if hasattr(backbone, "parameters") else None
    if device is not None:
        input_ids = input_ids.to(device)
        attention_mask = None if attention_mask is None else attention_mask.to(device)
    batch = PromptBatch(input_ids=input_ids, attention_mask=attention_mask, draft=draft)
    return run_sampler(backbone, batch, params, tokenizer=tokenizer, generator=generator, on_step=on_step, trace=trace)
