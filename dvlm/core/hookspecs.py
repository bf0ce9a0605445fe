"""The hook specifications of dvlm: the only place hookspecs live.

Every family of swappable components has exactly one registration hook, named
``dvlm_register_<family>(register)``. A plugin implements the hooks it needs with
``@dvlm.hookimpl`` and calls ``register(kind, factory, params, aliases=())`` once per kind:

- ``kind``: the name users write in specs (``kind: llada``);
- ``factory``: a callable, or a lazy ``"package.module:attribute"`` string, that turns a
  validated params object into the component; strings keep heavy imports (transformers,
  timm, open_clip) out of ``import dvlm`` and out of plugin discovery;
- ``params``: the pydantic params model (a subclass of ``dvlm.core.specs.ComponentParams``)
  whose ``kind`` field is ``Literal[kind]``;
- ``aliases``: other names accepted for the same kind.

Each docstring below follows one template: what to register, the factory's contract,
arguments, since-version.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("dvlm")


@hookspec
def dvlm_register_vision_encoders(register):
    """Register vision encoders: pixel views in, patch features out.

    Factory: ``factory(params) -> VisionEncoder`` (``dvlm.core.interfaces.VisionEncoder``):
    ``forward(pixels [views, 3, H, W]) -> [views, tokens, dim]``, plus its preprocessing
    contract and feature size.

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_projectors(register):
    """Register projectors: vision features to the backbone's embedding width.

    Factory: ``factory(params, in_dim, out_dim) -> Projector`` (``[..., in_dim] -> [..., out_dim]``).

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_backbones(register):
    """Register diffusion language backbones (bidirectional mask predictors).

    Factory: ``factory(params) -> Backbone`` (``dvlm.core.interfaces.Backbone``): embeddings or
    ids in, position-aligned logits ``[B, T, V]`` out, special tokens declared, KV cache accepted.

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_masking_strategies(register):
    """Register training-time masking strategies (forward noising process plus loss weighting).

    Factory: ``factory(params) -> MaskingStrategy`` (``dvlm.core.interfaces.MaskingStrategy``).

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_samplers(register):
    """Register samplers: the denoising loop over an answer window.

    Factory: ``factory(params) -> Sampler`` (``dvlm.core.interfaces.Sampler``).

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_schedules(register):
    """Register schedules: how many masked tokens to commit at each step.

    Factory: ``factory(params) -> Schedule`` (``dvlm.core.interfaces.Schedule``):
    ``counts(num_masked [B], steps) -> [B, steps]`` int64 counts that sum to ``num_masked``.

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_cache_policies(register):
    """Register KV-cache policies: what a sampler caches and when it refreshes it.

    Factory: ``factory(params) -> CachePolicy`` (``dvlm.core.interfaces.CachePolicy``).

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_commit_rules(register):
    """Register commit rules: which masked positions a sampler step commits.

    Factory: ``factory(params) -> CommitRule``: given per-position confidences of the candidates and
    the schedule's count for the step (None without a schedule), return a boolean commit mask (fixed
    count, threshold, factor). Any sampler spec selects one with ``commit_rule: {kind: ...}``.

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_confidence_measures(register):
    """Register confidence measures: how sure the model is of its proposal at a masked position.

    Factory: ``factory(params) -> Confidence``: ``(probs [.., V], chosen [..]) -> confidence [..]``
    (probability of the chosen token, top-2 margin, negative entropy, random).

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_image_layouts(register):
    """Register image layouts: how an image becomes views and how their features become tokens.

    Factory: ``factory(params) -> ImageLayout`` (single, pad, anyres, anyres_max).

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_chat_templates(register):
    """Register chat templates: conversation turns -> prompt text with ``<image>`` placeholders.

    Factory: ``factory(params) -> ChatTemplate`` (LLaDA/Llama-3 headers, Dream ChatML, plain).

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_tasks(register):
    """Register evaluation tasks: samples (prompt, images, references) and the metric that scores answers.

    Factory: ``factory(params) -> Task`` (``dvlm.core.interfaces.Task``): ``samples()`` and
    ``score(predictions, samples) -> {metric: value}``.

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.1.0
    """


@hookspec
def dvlm_register_checkpoint_layouts(register):
    """Register checkpoint layouts: published folder formats that dvlm reads and writes (LLaDA, Dream, LaViDa,
    LLaDA-V, dvlm's own).

    Factory: ``factory(params) -> CheckpointLayout`` (``dvlm.core.interfaces.CheckpointLayout``):
    ``detect(folder) -> bool`` (from the folder's ``config.json``; exactly one layout may claim a folder),
    ``read(folder) -> CheckpointReading`` (model spec, tensor renaming, tokenizer, special-token sources, quirks)
    and ``write(model, folder)`` (a dvlm model back into the published layout: config, key names, shard index).

    :param register: ``register(kind, factory, params, aliases=())``.
    :since: 0.2.0
    """


@hookspec
def dvlm_document_types(register):
    """Declare top-level spec document types (the ``spec:`` key of a file): ``train``, ``matrix``, ...

    Not a component family: the module that owns a document type declares it here, so that ``dvlm/core``
    never imports it. ``register(name, spec_type)`` takes the name and the type to validate with (a class, or a
    lazy ``"package.module:attribute"`` string, resolved when a document of that type is first parsed).

    :param register: ``register(name, spec_type)``.
    :since: 0.2.0
    """
