"""The diffusion vision-language model: a backbone, optionally a vision encoder + projector + image layout,
and the chat template and tokenizer that turn a conversation into the prompt.

Data flow (DESIGN section 4)::

    image -> layout.views -> vision encoder -> projector -> layout.merge (pool, unpad, newline) -> tokens
    conversation -> chat template -> text with <image> -> token chunks --+-- splice -> prompt embeddings
                                                                         |
                                                                   image tokens

All images of a batch are encoded by one vision forward; the spliced prompt embeddings go to the sampler
(``PromptBatch.inputs_embeds``), whose cache policy decides how the prefix is cached. Prompts of a batch
are left-padded.

Shape legend:
    B batch   P prompt length (text + image tokens)   D backbone width   N views of all images
    S view side   g tokens per view side   C vision feature width   T_i tokens of image i
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from dvlm.core.errors import PromptError
from dvlm.core.generation import PromptBatch
from dvlm.core.image import load_image
from dvlm.core.input_checks import context_length
from dvlm.core.prompt_truncation import truncate
from dvlm.core.plugins import get_registry
from dvlm.core.specs import ModelSpec, load_spec, parse_spec
from dvlm.core.tokenizer import IMAGE_PLACEHOLDER, load_tokenizer, split_on_images


def _conversations(prompt: Any, images: Any) -> list[tuple[Any, list[Any]]]:
    """``prompt`` + ``images`` -> one (conversation, images) pair per row.

    One prompt (a string or a message list) takes a flat list of images; a list of prompts takes a list
    with one list of images per prompt (or None)."""
    single = isinstance(prompt, str) or (isinstance(prompt, Sequence) and prompt and isinstance(prompt[0], Mapping))
    if single:
        return [(prompt, list(images or []))]
    prompts = list(prompt)
    if not prompts:
        raise PromptError("prompt= is an empty list; pass a string, a message list, or a list of those")
    if images is None:
        return [(p, []) for p in prompts]
    if len(images) != len(prompts) or any(row is not None and not isinstance(row, (list, tuple)) for row in images):
        raise PromptError(
            f"with {len(prompts)} prompts, images= must be a list of {len(prompts)} lists (one per prompt, "
            f"None or [] for none), got {len(images)} entries"
        )
    return [(p, list(row or [])) for p, row in zip(prompts, images)]


def _with_placeholders(conversation: Any, count: int, row: int) -> Any:
    """Check the ``<image>`` placeholders against the images; with none at all, put them before the first user
    text (as LaViDa's eval wrapper does: ``"<image> <image>\\n" + question``)."""
    messages = [{"role": "user", "content": conversation}] if isinstance(conversation, str) else list(conversation)
    found = sum(str(m.get("content", "")).count(IMAGE_PLACEHOLDER) for m in messages)
    if found == count:
        return conversation
    if found == 0:
        first = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
        if first is None:
            raise PromptError(f"prompt {row} has {count} image(s) but no user message to attach them to")
        prefix = " ".join([IMAGE_PLACEHOLDER] * count) + "\n"
        if isinstance(conversation, str):
            return prefix + conversation
        messages[first] = {**messages[first], "content": prefix + messages[first]["content"]}
        return messages
    raise PromptError(
        f"prompt {row} has {found} {IMAGE_PLACEHOLDER} placeholder(s) but {count} image(s) were given; "
        f"use one {IMAGE_PLACEHOLDER} per image (or none, to put them all before the text)"
    )


class DiffusionVLM(nn.Module):
    """Backbone + vision encoder + projector + image newline, with the chat template and tokenizer.

    Parameter names: ``backbone.*``, ``vision.*``, ``projector.*``, ``image_newline``.
    """

    def __init__(self, spec: ModelSpec, backbone: nn.Module, vision: nn.Module | None = None,
                 projector: nn.Module | None = None, image_layout: Any = None, chat_template: Any = None,
                 tokenizer: Any = None) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.vision = vision
        self.projector = projector
        self.image_layout = image_layout
        self.chat_template = chat_template
        self.tokenizer = tokenizer
        self.image_newline = None
        if image_layout is not None and image_layout.uses_newline:
            width = backbone.hidden_size  # LLaVA: randn(D) / sqrt(D)
            self.image_newline = nn.Parameter(torch.randn(width, dtype=self.dtype) / math.sqrt(width))

    @property
    def dtype(self) -> torch.dtype:
        return next(self.backbone.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def special_tokens(self):
        return self.backbone.special_tokens

    # -- images ----------------------------------------------------------------------------------------
    def load_images(self, images: Sequence[Any]) -> list[Any]:
        """Paths, bytes or PIL images -> RGB PIL images (clear errors for bad files, the pixel limit applied)."""
        if images and self.vision is None:
            raise PromptError("this model has no vision encoder, so it cannot take images; build it from a spec "
                              "with vision_encoder, projector and image_layout")
        return [load_image(image, self.spec.max_image_pixels) for image in images]

    def count_image_tokens(self, image: Any) -> int:
        """Tokens a loaded image becomes (from its size alone: nothing runs)."""
        return self.image_layout.num_tokens(image.size, self.vision.image_size, self.vision.grid_size)

    def encode_images(self, images: Sequence[Any]) -> list[torch.Tensor]:
        """Loaded images -> their token sequences ``[T_i, D]``, with one vision forward for all their views."""
        if not images:
            return []
        views, grids = zip(*(self.image_layout.views(image, self.vision.preprocess) for image in images))
        pixels = torch.cat(views).to(self.device)  # [N, 3, S, S]
        features = self.vision(pixels)  # [N, g*g, C]
        projected = self.projector(features.to(self.dtype))  # [N, g*g, D]
        tokens, start = [], 0
        for view, grid in zip(views, grids):
            tokens.append(self.image_layout.merge(projected[start : start + len(view)], grid, self.image_newline))
            start += len(view)
        return tokens

    # -- prompts ---------------------------------------------------------------------------------------
    @staticmethod
    def render_with(template: Any, tokenizer: Any, conversation: Any) -> str:
        """A conversation rendered by ``template`` for ``tokenizer`` (its BOS text; its own chat_template)."""
        return template.render(conversation, bos_token=getattr(tokenizer, "bos_token", None), tokenizer=tokenizer)

    def render(self, conversation: Any, raw: bool = False) -> str:
        """The prompt text: the chat template applied, or the text itself (``raw``, or without a template)."""
        if self.chat_template is not None and not raw:
            return self.render_with(self.chat_template, self.tokenizer, conversation)
        if not isinstance(conversation, str):
            raise PromptError("prompt= must be plain text, not messages, when no chat template applies (raw=True, "
                              "or a model without chat_template)")
        return conversation

    def _fit(self, rows: list[list[Any]], gen_length: int, heads: list[int]) -> list[list[Any]]:
        """Each row's pieces (text-id lists and ``(image, token count)``) within the backbone's context, cut
        as the spec's ``truncation`` says (images whole, the BOS/system head kept), or a clear error."""
        context = context_length(self.backbone)
        if context is None:
            return rows
        budget = context - gen_length
        if budget <= 0:
            raise PromptError(f"gen_length {gen_length} leaves no room for a prompt in the backbone's context of "
                              f"{context} tokens; lower gen_length")
        for b, pieces in enumerate(rows):
            text = sum(len(p) for p in pieces if isinstance(p, list))
            image = sum(p[1] for p in pieces if isinstance(p, tuple))
            if text + image > budget and self.spec.truncation == "error":
                raise PromptError(
                    f"prompt {b} is {text} text + {image} image tokens = {text + image}, and with the "
                    f"{gen_length}-token answer that exceeds the backbone's context of {context} tokens. Shorten "
                    f"the prompt, use fewer or smaller images (or a layout with fewer tokens), lower gen_length, "
                    f"or set `truncation: left` or `right` in the model spec."
                )
        return [truncate(pieces, budget, self.spec.truncation, head) for pieces, head in zip(rows, heads)]

    def _protected_head(self, conversation: Any, first_chunk: list[int]) -> int:
        """Tokens at the start of a row that left truncation keeps: BOS and the system turn (the template's
        rendering of the leading system messages, when it is a prefix of the row)."""
        if self.chat_template is None:
            return 0
        messages = [{"role": "user", "content": conversation}] if isinstance(conversation, str) else list(conversation)
        system = []
        for message in messages:
            if message.get("role") != "system":
                break
            system.append(message)
        head = self.chat_template.render(system, bos_token=getattr(self.tokenizer, "bos_token", None),
                                         add_generation_prompt=False, tokenizer=self.tokenizer)
        ids = split_on_images(self.tokenizer, head, self.spec.text_after_image)[0] if head else []
        return len(ids) if first_chunk[: len(ids)] == ids else 0

    def prompt_batch(self, prompt: Any, images: Any = None, *, gen_length: int = 0,
                     draft: torch.Tensor | Sequence[int] | None = None, raw: bool = False) -> PromptBatch:
        """Conversation(s) and images -> the sampler's ``PromptBatch`` (ids, left padding, spliced embeddings).

        ``prompt``: a string, a message list, or a list of those (a batch); ``images``: for one prompt a list
        of images, for a batch one list per prompt. ``gen_length`` counts against the backbone's context.
        ``raw``: tokenise the prompt text as given (no chat template)."""
        if self.tokenizer is None:
            raise PromptError("this model has no tokenizer, so prompt= text cannot be encoded; set `tokenizer:` "
                              "in the model spec (a folder with tokenizer files) or pass input_ids=")
        rows, heads = [], []
        for b, (conversation, row_images) in enumerate(_conversations(prompt, images)):
            row_loaded = self.load_images(row_images)
            conversation = _with_placeholders(conversation, len(row_loaded), b)
            chunks = split_on_images(self.tokenizer, self.render(conversation, raw), self.spec.text_after_image)
            pieces: list[Any] = [chunks[0]]
            for image, chunk in zip(row_loaded, chunks[1:]):
                pieces += [(image, self.count_image_tokens(image)), chunk]
            rows.append(pieces)
            keep_head = self.spec.truncation == "left" and not raw
            heads.append(self._protected_head(conversation, chunks[0]) if keep_head else 0)
        rows = self._fit(rows, gen_length, heads)  # before any vision forward: dropped images are not encoded
        features = iter(self.encode_images([p[0] for pieces in rows for p in pieces if isinstance(p, tuple)]))
        pad_id = self.special_tokens.pad_id
        ids_rows, embed_rows = [], []
        for pieces in rows:
            ids, embeds = [], []
            for piece in pieces:
                if isinstance(piece, list):
                    chunk = torch.tensor(piece, dtype=torch.long, device=self.device)
                    ids.append(chunk)
                    embeds.append(self.backbone.embed(chunk[None])[0])  # [len, D]
                else:
                    tokens = next(features)  # [T_i, D]
                    ids.append(torch.full((len(tokens),), pad_id, dtype=torch.long, device=self.device))
                    embeds.append(tokens.to(self.dtype))
            ids_rows.append(torch.cat(ids))
            embed_rows.append(torch.cat(embeds))
        return self._left_pad(ids_rows, embed_rows, draft)

    def _left_pad(self, ids_rows, embed_rows, draft) -> PromptBatch:
        length = max(len(ids) for ids in ids_rows)
        batch = len(ids_rows)
        ids = torch.full((batch, length), self.special_tokens.pad_id, dtype=torch.long, device=self.device)
        embeds = torch.zeros(batch, length, self.backbone.hidden_size, dtype=self.dtype, device=self.device)
        mask = torch.zeros(batch, length, dtype=torch.long, device=self.device)
        for b, (row_ids, row_embeds) in enumerate(zip(ids_rows, embed_rows)):
            ids[b, length - len(row_ids):] = row_ids
            embeds[b, length - len(row_ids):] = row_embeds
            mask[b, length - len(row_ids):] = 1
        return PromptBatch(input_ids=ids, attention_mask=None if bool(mask.all()) else mask, inputs_embeds=embeds,
                           draft=draft)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The backbone's forward (``dvlm.core.interfaces.Backbone``): logits ``[B, T, V]``."""
        return self.backbone(*args, **kwargs)


def _as_spec(spec: ModelSpec | Mapping[str, Any] | str | Path) -> ModelSpec:
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, Mapping):
        return parse_spec(dict(spec), as_type="model")
    return load_spec(spec, as_type="model")


def assemble(spec: ModelSpec, backbone: nn.Module, tokenizer: Any = None) -> DiffusionVLM:
    """Everything around an already built backbone (used by ``build`` and by checkpoint loading)."""
    registry = get_registry()
    vision = projector = image_layout = template = None
    if spec.vision_encoder is not None:
        vision = registry.build("vision_encoders", spec.vision_encoder)
        projector = registry.build("projectors", spec.projector, vision.feature_dim, backbone.hidden_size)
        image_layout = registry.build("image_layouts", spec.image_layout)
    if spec.chat_template is not None:
        template = registry.build("chat_templates", spec.chat_template)
    if tokenizer is None and spec.tokenizer is not None:
        tokenizer = load_tokenizer(spec.tokenizer)
    model = DiffusionVLM(spec, backbone, vision, projector, image_layout, template, tokenizer)
    if projector is not None:
        projector.to(device=model.device, dtype=model.dtype)
    return model


def build(spec: ModelSpec | Mapping[str, Any] | str | Path) -> DiffusionVLM:
    """A model spec (object, dict or file) -> a ``DiffusionVLM``: random weights for the backbone and projector;
    the vision encoder loads its ``pretrained`` weights, or is random where the spec says ``init: random``."""
    spec = _as_spec(spec)
    backbone = get_registry().build("backbones", spec.backbone)
    return assemble(spec, backbone)
