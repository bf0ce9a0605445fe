"""Protocols for each component family, and the small dataclasses they exchange.

Components are plain objects (usually ``nn.Module``s) that satisfy these Protocols structurally;
no base class is required. Shape legend used throughout dvlm:

    B  batch            T  tokens in the current forward window     S  cached/attended key length
    V  vocabulary       D  model width                              H / Hkv  query / key-value heads
    Dh head width       N  views (image crops)                      G  answer (generation) length
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class SpecialTokens:
    """Token ids with a role, declared by the backbone (from its config); nothing else hard-codes them."""

    mask_id: int
    eos_id: int
    pad_id: int
    eot_id: int | None = None
    bos_id: int | None = None
    extra: Mapping[str, int] = field(default_factory=dict)
    """Further named roles, e.g. infill tokens: ``{"fim": ..., "fim_filler": ...}``."""


@runtime_checkable
class KVCache(Protocol):
    """Preallocated per-layer K/V buffers ``[B, Hkv, S_max, Dh]`` addressed by absolute position.

    A forward window ``[start, start + T)`` writes its keys/values into the buffers at those
    positions and attends to positions ``[0, attend_end)`` of the buffers (its own fresh K/V
    included, since they were just written). What stays valid between steps is the cache
    policy's business (prefix written once; block-wise refresh; ...). No ``torch.cat`` per step.
    """

    max_length: int

    def reset(self) -> None: ...


@runtime_checkable
class Backbone(Protocol):
    """A bidirectional mask predictor: embeddings (or ids) in, hidden states out, logits for chosen rows only.

    ``hidden_states(input_ids=None, *, inputs_embeds=None, attention_mask=None, position_ids=None,
    cache=None, cache_start=0, attend_end=None, rows=None) -> [B, T', D]``; ``head(hidden [..., D]) ->
    [..., V]`` applies the LM head to any gathered rows; ``forward(..., rows=None) -> logits [B, T', V]`` is
    ``head(hidden_states(...))``. The head is the largest matmul of an 8B model with a 126k vocabulary, so a
    caller asks for the rows it samples (``rows``: a slice of the window; ``slice(0, 0)``: none, e.g. a prefill
    that only fills the cache) or gathers hidden rows itself (the loss and the likelihood, at masked positions).

    - attention is bidirectional unless ``attention_mask`` says otherwise: a key-padding mask
      ``[B, S]`` (1/True = real token) or a full boolean mask ``[B, 1, T, S]`` (True = may attend);
    - ``position_ids [B, T]`` default to the window's slice of ``cumsum(attention_mask) - 1`` for a
      key-padding mask (a left-padded row keeps its batch-1 positions), else ``cache_start + arange(T)``;
    - with ``cache``, the window's K/V are written at ``[cache_start, cache_start + T)`` and the
      window attends to cache positions ``[0, attend_end)`` (default ``cache_start + T``);
    - hidden states (and so logits) are aligned: row i is what predicts token i even when the underlying
      head is shifted (``logits_shifted``, Dream: the hidden state at i - 1); for a cached window the first row
      uses the hidden state at ``cache_start - 1``, which the cache keeps (it stores the final hidden state of
      every position a forward wrote), so ``head(cache.hidden_before(P))`` is the prefill's prediction of P.
    """

    special_tokens: SpecialTokens
    logits_shifted: bool
    vocab_size: int
    hidden_size: int

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``[B, T] -> [B, T, D]``."""
        ...

    def new_cache(self, batch_size: int, max_length: int) -> KVCache:
        """Preallocate a cache in the backbone's dtype and device."""
        ...

    def hidden_states(self, input_ids: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """Aligned final hidden states ``[B, T', D]`` of the window's ``rows`` (after the final norm)."""
        ...

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[..., D] -> [..., V]``."""
        ...

    def __call__(self, input_ids: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor: ...


@runtime_checkable
class Schedule(Protocol):
    """How many masked tokens to commit at each step of a block."""

    def counts(self, num_masked: torch.Tensor, steps: int) -> torch.Tensor:
        """``num_masked [B]`` int -> ``[B, steps']`` int64 per-step counts, each row summing to its count."""
        ...


@runtime_checkable
class VisionEncoder(Protocol):
    """Pixel views ``[N, 3, S, S]`` -> patch features ``[N, g*g, feature_dim]`` (``g = grid_size``), with the
    preprocessing it expects declared as ``preprocess`` (a ``dvlm.core.image.Preprocess``: side, mean/std,
    interpolation, resize mode)."""

    feature_dim: int
    image_size: int
    grid_size: int
    preprocess: Any

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Projector(Protocol):
    """Vision features ``[..., in_dim]`` -> backbone embeddings ``[..., out_dim]``."""

    def __call__(self, features: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class ImageLayout(Protocol):
    """How an image becomes views, and how the views' projected features become its token sequence.

    ``views(image, preprocess) -> (pixels [N, 3, S, S], grid)``; ``merge(features [N, g*g, D], grid, newline [D]
    or None) -> tokens [T, D]``; ``num_tokens(image_size_wh, S, g)`` and ``num_views(image_size_wh, S)`` give
    ``T`` and ``N`` from the image size alone. ``uses_newline``: whether ``merge`` needs the learned newline.
    """

    uses_newline: bool

    def views(self, image: Any, preprocess: Any) -> tuple[torch.Tensor, Any]: ...

    def merge(self, features: torch.Tensor, grid: Any, newline: torch.Tensor | None) -> torch.Tensor: ...

    def num_tokens(self, image_size: tuple[int, int], view_size: int, grid_size: int) -> int: ...

    def num_views(self, image_size: tuple[int, int], view_size: int) -> int: ...


@runtime_checkable
class ChatTemplate(Protocol):
    """A conversation (a string, or ``{"role", "content"}`` messages) -> the prompt text, ``<image>`` kept."""

    end_of_turn: str

    def render(self, conversation: Any, *, bos_token: str | None = None, add_generation_prompt: bool = True,
               tokenizer: Any = None) -> str:
        """``tokenizer``: the model's tokenizer, for templates that render its own ``chat_template``."""
        ...


@runtime_checkable
class CachePolicy(Protocol):
    """Decides what a sampler caches and when it refreshes it (see ``dvlm/plugins/samplers``).

    ``start(canvas)`` runs once before the first step (e.g. the prefix prefill);
    ``logits(canvas, block_start, block_end, refresh) -> (logits [B, W, V], offset)`` runs the step's forward
    (``refresh`` on a block's first forward); row ``i`` is absolute position ``offset + i`` and the rows
    cover ``[block_start, block_end)``.
    """

    name: str

    def start(self, canvas: Any) -> None: ...

    def logits(self, canvas: Any, block_start: int, block_end: int, refresh: bool) -> tuple[torch.Tensor, int]: ...


@runtime_checkable
class CommitRule(Protocol):
    """Which candidate positions a sampler step commits; every sampler takes one as its spec's ``commit_rule``.

    ``rule(confidence [B, N], candidates [B, N] bool, count [B] int64 | None) -> commit [B, N] bool``: never a
    non-candidate, at least one position in a row with candidates. ``count`` is the schedule's number for the
    step, None under a sampler without a schedule (``parallel``). Optional ``plan_exact = True``: the rule
    commits exactly ``min(count, candidates)``, so the loop trusts the schedule and skips a per-step sync.
    """

    def __call__(self, confidence: torch.Tensor, candidates: torch.Tensor,
                 count: torch.Tensor | None = None) -> torch.Tensor: ...


@runtime_checkable
class Sampler(Protocol):
    """The denoising loop over an answer window.

    ``run(backbone, prompt=PromptBatch, generator=None)`` is a generator: it yields a
    ``dvlm.core.generation.StepEvent`` per step, or an object whose ``resolve()`` builds it (so that nothing is
    built when nobody listens), and returns the finished canvas (``.answer [B, G]``, ``.nfe``) as its
    ``StopIteration`` value; ``dvlm.core.generation.run_sampler`` drives it.
    """

    def run(self, backbone: Backbone, **inputs: Any) -> Iterator[Any]: ...


@runtime_checkable
class MaskingStrategy(Protocol):
    """Training-time noising: a batch with target labels -> noised inputs and per-token loss weights."""

    def __call__(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> Any: ...


@dataclass(frozen=True)
class EvalSample:
    """One evaluation item: a single-turn question about zero or more images, with reference answers."""

    id: str
    prompt: str
    images: tuple[str, ...]
    references: tuple[str, ...]
    draft: tuple[tuple[bool, str], ...] = ()
    """An infill constraint on the answer, as segments ``(fixed, text)``: fixed text is written into the answer
    window and never changes; free text is only a length (as many masks as its tokens). Empty: no constraint."""


@runtime_checkable
class Task(Protocol):
    """An evaluation task: its samples and how predictions are scored."""

    gen_length: int | None
    """Answer window the task needs (None: the sampler's)."""

    def samples(self) -> list[EvalSample]: ...

    def score(self, predictions: list[str], samples: list[EvalSample]) -> dict[str, list[float]]:
        """Per-sample scores of each metric (the metric is their mean), in the order of ``samples``."""


@dataclass(frozen=True)
class CheckpointReading:
    """What a checkpoint layout reads from a folder: everything ``load_pretrained`` needs besides the tensors."""

    spec: Any
    """The ``ModelSpec`` to build (backbone, vision parts, chat template; dtype = the stored one)."""
    rename: Callable[[str], str]
    """Stored tensor name -> the model's parameter name; a name the model does not have is an error unless
    ``unused`` says it is dropped on purpose."""
    unused: Callable[[str], bool] = lambda target: False
    """Renamed tensors the model may lack on purpose (a vision tower's head, its layers after the selected one)."""
    tokenizer: Any = None
    """The folder's tokenizer (None when the folder has no tokenizer files)."""
    dtype_source: str = ""
    """Where the stored dtype came from (``config.json torch_dtype``, ``safetensors headers``)."""
    special_token_sources: Mapping[str, str] = field(default_factory=dict)
    """Role (``bos_token_id``, ...) -> the file and field its id came from."""
    quirks: tuple[str, ...] = ()
    """The folder's quirks this layout handled, in words (for ``dvlm inspect``)."""


@runtime_checkable
class CheckpointLayout(Protocol):
    """A published checkpoint folder format, read and written (``dvlm/plugins/checkpoint_layouts``).

    ``detect(folder)``: whether the folder is in this layout (from its ``config.json`` / ``spec.json``); at most
    one registered layout may claim a folder. ``read(folder) -> CheckpointReading``. ``write(model, folder)``:
    the model (a ``DiffusionVLM``) as a folder of this layout: config, tensors under the published key names
    with the shard index, tokenizer files; ``read`` of the result gives the same model. Before writing anything
    it refuses (``CheckpointError``) a model it cannot hold and, unless ``overwrite``, a folder that already
    holds a checkpoint (``dvlm.core.checkpoint.check_destination``).
    """

    name: str
    summary: str

    def detect(self, folder: Path) -> bool: ...

    def read(self, folder: Path) -> CheckpointReading: ...

    def write(self, model: Any, folder: Path, max_shard_bytes: int = 4 << 30, overwrite: bool = False) -> None: ...
