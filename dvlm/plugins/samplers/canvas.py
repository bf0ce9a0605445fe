"""The canvas: the sequence a sampler denoises, and the one place that runs the backbone.

Layout (absolute positions): the prompt ``[0, P)`` (left-padded for ragged batches; image features arrive as
``prompt_embeds`` rows), then the answer window ``[P, P + G)`` that starts fully masked except for the fixed
tokens of an infill draft. ``forward(start, end)`` runs the backbone on ``[start, end)`` (through a KV cache
when the cache policy passes one), applies unsupervised CFG when asked, and counts forward passes.

Ragged batches are batch-invariant: a padded row is given RoPE positions counted over its real tokens
(``rope.padded_positions``), and on the CPU the attention of a padded batch runs each row on its real keys only
(``dvlm.core.attention``), so a row computes what its batch-1 run computes, bit for bit, in bf16 too.

Shapes: B batch, P prompt length, G answer length, N = P + G, W window length, V vocabulary, D width.
"""

from __future__ import annotations

import weakref

import torch

from dvlm.core.errors import SamplerError
from dvlm.core.rope import padded_positions


COMPILE_OPTIONS: dict = {}
"""Keyword arguments of ``torch.compile`` under ``compile`` (default: inductor; a ``backend`` here replaces the
mode, which only inductor takes)."""


def compiled(fn, compile: bool | str):
    """``fn`` under ``torch.compile``; ``compile`` is the sampler's option: True, or a mode (``reduce-overhead``:
    inductor with CUDA graphs)."""
    options = dict(COMPILE_OPTIONS)
    if isinstance(compile, str) and "backend" not in options:
        options["mode"] = compile
    return torch.compile(fn, **options)


REUSED_CACHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
"""backbone -> {(rows, length): KV cache} under ``compile: reduce-overhead`` (``Canvas.new_cache``)."""


def reused_cache(backbone, rows: int, length: int):
    """The backbone's K/V buffers for ``rows x length``, made once and reset for each generation."""
    caches = REUSED_CACHES.setdefault(backbone, {})
    if (rows, length) not in caches:
        caches[rows, length] = backbone.new_cache(rows, length)
    cache = caches[rows, length]
    cache.reset()
    return cache


def new_step(compile: bool | str) -> None:
    """Tell CUDA graphs a new step begins (``reduce-overhead``): the previous step's graph outputs, already read,
    may be overwritten."""
    if compile == "reduce-overhead":
        torch.compiler.cudagraph_mark_step_begin()


class Canvas:
    def __init__(self, backbone, prompt, gen_length: int, *, cfg_scale: float = 0.0,
                 compile: bool | str = False) -> None:
        self.backbone = backbone
        self.compile = compile
        self.run_backbone = compiled(backbone, compile) if compile else backbone
        """What ``forward`` calls: the backbone, or its ``torch.compile`` (the sampler's ``compile``)."""
        self.tokens = backbone.special_tokens
        ids, embeds, padding = _prompt(prompt, self.tokens.pad_id)
        self.batch_size, self.prompt_length = ids.shape
        self.gen_length = gen_length
        self.length = self.prompt_length + gen_length
        self.device = ids.device
        self.x = torch.full((self.batch_size, self.length), self.tokens.mask_id, dtype=torch.long, device=self.device)
        self.x[:, : self.prompt_length] = ids
        if prompt.draft is not None:
            draft = _broadcast_draft(prompt.draft, self.batch_size, gen_length, self.device)
            self.x[:, self.prompt_length : self.prompt_length + draft.shape[1]] = draft
        self.prompt_embeds = embeds
        self.key_padding = None  # [B, N]: 1 = real token; None when nothing is padded
        self.positions = None  # [B, N] RoPE positions counted over real tokens; None = 0..N-1
        if not bool(padding.all()):
            answer = torch.ones(self.batch_size, gen_length, dtype=torch.bool, device=self.device)
            self.key_padding = torch.cat([padding, answer], dim=1)
            self.positions = padded_positions(self.key_padding)
        self.cfg_scale = cfg_scale
        self.nfe = 0
        self.kv_rows_recomputed = 0
        """Positions whose keys/values forwards computed, summed over the rows the backbone saw (CFG included)."""
        self.nan_logits = torch.zeros((), dtype=torch.bool, device=self.device)
        """Set once a sampled row's logits held a NaN (a NaN confidence, ``flag_nan``; checked after the loop: no host
        sync per step)."""

    # -- views ------------------------------------------------------------------------------------------
    @property
    def answer(self) -> torch.Tensor:
        """``[B, G]`` view of the answer window."""
        return self.x[:, self.prompt_length :]

    def masked(self, start: int, end: int) -> torch.Tensor:
        """``[B, end - start]`` bool: still-masked positions in ``[start, end)``."""
        return self.x[:, start:end] == self.tokens.mask_id

    # -- model -----------------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        """Rows the backbone sees: 2B under CFG (conditional, then prompt-masked)."""
        return self.batch_size * (2 if self.cfg_scale > 0 else 1)

    def new_cache(self):
        """The generation's K/V buffers (one cache per generation). Compiled, they are static addresses; under
        ``reduce-overhead`` the same buffers serve each generation of this shape, since CUDA graphs replay into the
        addresses they recorded (fresh buffers would re-record, and keep, every graph each generation): one
        generation at a time per backbone then."""
        if self.compile == "reduce-overhead":
            cache = reused_cache(self.backbone, self.rows, self.length)
        else:
            cache = self.backbone.new_cache(self.rows, self.length)
        if self.compile and hasattr(cache, "mark_static"):
            cache.mark_static()
        return cache

    def forward(self, start: int, end: int, *, cache=None, attend_end: int | None = None,
                rows: tuple[int, int] | None = None) -> torch.Tensor:
        """Logits ``[B, R, V]`` of the absolute positions ``rows = (first, last)`` (default: the whole window)
        of the window ``[start, end)`` (CFG already combined); the head runs on those rows only, and on none for
        ``first == last`` (a prefill that only fills the cache)."""
        ids = self.x[:, start:end]  # [B, W]
        in_prompt = max(0, min(end, self.prompt_length) - start)  # prompt rows inside the window
        embeds = None
        if self.prompt_embeds is not None and in_prompt:
            embeds = self.backbone.embed(ids)  # [B, W, D]
            embeds[:, :in_prompt] = self.prompt_embeds[:, start : start + in_prompt].to(embeds.dtype)
        padding = self.key_padding
        positions = None if self.positions is None else self.positions[:, start:end]  # [B, W]
        if self.cfg_scale > 0:  # SMDM's unsupervised CFG: the same window with the prompt masked
            uncond = ids.clone()
            uncond[:, :in_prompt] = self.tokens.mask_id
            if embeds is not None:
                embeds = torch.cat([embeds, self.backbone.embed(uncond)])  # [2B, W, D]
            ids = torch.cat([ids, uncond])  # [2B, W]
            padding = None if padding is None else torch.cat([padding, padding])
            positions = None if positions is None else torch.cat([positions, positions])
        logits = self.run_backbone(
            None if embeds is not None else ids,
            inputs_embeds=embeds,
            attention_mask=padding,
            position_ids=positions,
            cache=cache,
            cache_start=start,
            attend_end=attend_end,
            rows=None if rows is None else slice(rows[0] - start, rows[1] - start),
        )
        self.nfe += 2 if self.cfg_scale > 0 else 1
        self.kv_rows_recomputed += self.rows * (end - start)
        if self.cfg_scale > 0:
            cond, uncond_logits = logits.chunk(2)
            logits = uncond_logits + (self.cfg_scale + 1) * (cond - uncond_logits)
        return logits

    def flag_nan(self, confidence: torch.Tensor) -> None:
        """Record a NaN ``confidence`` (the proposals give one to a candidate whose logits hold a NaN)."""
        self.nan_logits |= confidence.isnan().any()

    # -- state -----------------------------------------------------------------------------------------
    def commit(self, start: int, commit: torch.Tensor, tokens: torch.Tensor) -> None:
        """Write ``tokens [B, W]`` where ``commit [B, W]`` is set, in the window starting at ``start``."""
        window = self.x[:, start : start + commit.shape[1]]
        window.copy_(torch.where(commit, tokens, window))


def _prompt(prompt, pad_id: int):
    """``(ids [B, P], embeds [B, P, D] or None, real [B, P] bool)``; without ids (an all-features prompt)
    the ids are placeholders, never read as tokens."""
    ids, embeds, padding = prompt.input_ids, prompt.inputs_embeds, prompt.attention_mask
    if ids is None:
        ids = torch.full(embeds.shape[:2], pad_id, dtype=torch.long, device=embeds.device)
    real = (torch.ones(ids.shape, dtype=torch.bool, device=ids.device) if padding is None
            else padding.to(ids.device).bool())  # [B, P]
    return ids, embeds, real


def _broadcast_draft(draft, batch_size: int, gen_length: int, device) -> torch.Tensor:
    """An infill draft ``[L]``, ``[1, L]`` (one for every row) or ``[B, L]`` -> ``[B, L]``; anything else is
    refused (a draft is never reshaped across rows)."""
    draft = torch.as_tensor(draft, dtype=torch.long, device=device)
    if draft.dim() == 1:
        draft = draft[None]
    if draft.dim() != 2 or draft.shape[0] not in (1, batch_size):
        raise SamplerError(
            f"the infill draft has shape {tuple(draft.shape)} for a batch of {batch_size}; pass one draft [L] "
            f"(or [1, L]) for every row, or one per row [{batch_size}, L]"
        )
    if draft.shape[1] > gen_length:
        raise SamplerError(
            f"the infill draft has {draft.shape[1]} tokens but gen_length is {gen_length}; "
            f"raise gen_length to at least {draft.shape[1]}"
        )
    return draft.expand(batch_size, -1)


def resolve_tokens(refs, special_tokens) -> list[int]:
    """Ids and role names (``eos``, ``start_header``, optional ``role?``) -> ids, using the backbone's roles."""
    roles = {role: getattr(special_tokens, f"{role}_id") for role in ("mask", "eos", "pad", "eot", "bos")}
    roles.update(special_tokens.extra)
    ids = []
    for ref in refs:
        if isinstance(ref, int):
            ids.append(ref)
            continue
        optional = ref.endswith("?")
        role = ref.rstrip("?")
        value = roles.get(role)
        if value is None:
            if optional:
                continue
            declared = ", ".join(sorted(k for k, v in roles.items() if v is not None))
            raise SamplerError(
                f"suppress_tokens: this backbone declares no '{role}' token (declared roles: {declared}); "
                f"use a token id, a declared role, or '{role}?' to skip it when undeclared"
            )
        ids.append(int(value))
    return sorted(set(ids))


def stop_token_ids(special_tokens) -> list[int]:
    """End-of-answer tokens: the end-of-turn token and end-of-sequence."""
    return sorted({t for t in (special_tokens.eot_id, special_tokens.eos_id) if t is not None})


class StopTracker:
    """Early stop (LLaDA-V's stopping criteria), per row: once an end token is committed at answer position
    s, only positions before s stay eligible, and the row is finished when none of them is masked."""

    def __init__(self, canvas: Canvas, enabled: bool) -> None:
        self.canvas = canvas
        self.enabled = enabled
        self.stop_ids = torch.tensor(stop_token_ids(canvas.tokens), device=canvas.device)
        self.stop = torch.full((canvas.batch_size,), canvas.gen_length, device=canvas.device)  # [B] answer coords
        self.pending = None
        """On CUDA: the previous step's all-done flag on its way to the host (``finished_a_step_ago``)."""
        if enabled:
            self.update()

    def update(self) -> None:
        if not self.enabled:
            return
        hit = torch.isin(self.canvas.answer, self.stop_ids)  # [B, G]
        first = torch.where(hit.any(-1), hit.to(torch.int64).argmax(-1), self.canvas.gen_length)
        self.stop = torch.minimum(self.stop, first)

    def candidates(self, start: int, end: int) -> torch.Tensor:
        """``[B, end - start]`` bool: masked positions in ``[start, end)`` a step may commit (before the stop)."""
        masked = self.canvas.masked(start, end)
        if not self.enabled:
            return masked
        position = torch.arange(start, end, device=self.canvas.device) - self.canvas.prompt_length
        return masked & (position[None, :] < self.stop[:, None])

    def finish(self) -> Canvas:
        """End of the loop: with early stop, every answer position after a row's stop becomes padding
        (the answer ends at its earliest end token, as LLaDA-V cuts its output there)."""
        if self.enabled:
            after = torch.arange(self.canvas.gen_length, device=self.canvas.device)[None, :] > self.stop[:, None]
            self.canvas.answer.masked_fill_(after, self.canvas.tokens.pad_id)
        return self.canvas

    def all_done(self) -> bool:
        """True when every row is finished (one host read; a device sync on an accelerator)."""
        return self.enabled and bool(self._all_done())

    def finished_a_step_ago(self) -> bool:
        """Early stop's per-step check, never waiting for the step just launched.

        On the CPU (reading syncs nothing) it is ``all_done()``. On CUDA this step's flag is copied to the host
        without blocking and the previous step's flag is read: its copy completed while this step ran. The lag
        can cost one forward after every row finished (a step with no candidate commits nothing), never a token."""
        if not self.enabled:
            return False
        done = self._all_done()
        if not flag_lags(done):
            return bool(done)
        previous, self.pending = self.pending, (done.to("cpu", non_blocking=True), record_event(done.device))
        if previous is None:
            return False
        flag, event = previous
        if event is not None:
            event.synchronize()  # the previous step's copy: complete, or about to be
        return bool(flag)

    def _all_done(self) -> torch.Tensor:
        """``[]`` bool on the device: no row has a masked position before its stop."""
        answer_masked = self.canvas.answer == self.canvas.tokens.mask_id  # [B, G]
        before_stop = torch.arange(self.canvas.gen_length, device=self.canvas.device)[None, :] < self.stop[:, None]
        return ~(answer_masked & before_stop).any()


def flag_lags(flag: torch.Tensor) -> bool:
    """Whether early stop reads its flag a step late: on CUDA, where a read would wait for the device."""
    return flag.device.type == "cuda"


def record_event(device: torch.device):
    """A CUDA event recorded on the current stream (None elsewhere: nothing to wait for)."""
    if device.type != "cuda":
        return None
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(device))  # the stream the copy was queued on
    return event
