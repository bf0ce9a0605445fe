"""The trainer's view of a model: embed a batch once, noise it, run the backbone, score the loss.

``TrainingModel`` wraps a ``DiffusionVLM`` (``dvlm.core.vlm``: ``backbone``, and for a VLM ``vision``,
``projector``, ``image_newline``) or a bare backbone. It is the one module the trainer optimises and,
under ``torchrun``, wraps in DDP.

The batch is embedded **once** (``[B, T, D]``: token embeddings with image features spliced in), and
the masking strategy's copies are built from that one tensor (``MaskedBatch.noise_embeds``). With
complementary masking the vision encoder therefore runs once per micro-batch for two noised copies,
and both copies' gradients reach it through the shared features.

Shape legend: B examples, R noised rows (copies · B), T tokens, D width, V vocabulary.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from dvlm.core.masked_batch import IGNORE_INDEX, MaskedBatch
from dvlm.data.encode import IMAGE_SLOT


class TrainingModel(nn.Module):
    """A ``DiffusionVLM`` (or a bare backbone) plus the masked-diffusion training forward."""

    def __init__(self, model: nn.Module, max_length: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.max_length = max_length

    @property
    def backbone(self) -> nn.Module:
        return getattr(self.model, "backbone", self.model)

    @property
    def is_multimodal(self) -> bool:
        return getattr(self.model, "vision", None) is not None

    def parts(self) -> dict[str, nn.Module]:
        """Named parts for per-part learning rates and freezing: vision, projector (with the image newline
        and any other loose parameter of the VLM), backbone."""
        if not self.is_multimodal:
            return {"backbone": self.backbone}
        parts = {"vision": self.model.vision, "projector": self.model.projector, "backbone": self.backbone}
        covered = {id(p) for module in parts.values() for p in module.parameters()}
        rest = [p for p in self.model.parameters() if id(p) not in covered]  # e.g. image_newline
        if rest:
            parts["projector"] = nn.ModuleList([self.model.projector, _LooseParameters(rest)])
        return parts

    def embed(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids [B, T]`` (``IMAGE_SLOT`` where an image goes) -> embeddings ``[B, T', D]`` and labels
        ``[B, T']``: each slot replaced by its image's tokens (labels ``IGNORE_INDEX``), every image of the
        batch encoded by one vision forward; rows that end up shorter are EOS-padded (EOS targets)."""
        ids, labels = batch["input_ids"], batch["labels"]
        text = self.backbone.embed(ids.clamp(min=0))  # [B, T, D]; slot positions are replaced below
        if not self.is_multimodal:
            return text, labels
        images = [image for row in batch["images"] for image in row]
        tokens = iter(self.model.encode_images(self.model.load_images(images)))  # one vision forward
        eos = self.backbone.special_tokens.eos_id
        rows, row_labels = [], []
        for b in range(ids.shape[0]):
            pieces, piece_labels, start = [], [], 0
            for slot in (ids[b] == IMAGE_SLOT).nonzero().flatten().tolist():
                image = next(tokens).to(text.dtype)  # [T_i, D]
                pieces += [text[b, start:slot], image]
                piece_labels += [labels[b, start:slot], labels.new_full((len(image),), IGNORE_INDEX)]
                start = slot + 1
            rows.append(torch.cat([*pieces, text[b, start:]]))  # [T'_b, D]
            row_labels.append(torch.cat([*piece_labels, labels[b, start:]]))  # [T'_b]
        length = max(len(row) for row in rows)
        eos_embed = self.backbone.embed(ids.new_tensor([eos]))[0]  # [D]
        embeds = torch.stack([torch.cat([row, eos_embed.expand(length - len(row), -1)]) for row in rows])  # [B, T', D]
        out_labels = torch.stack([torch.cat([row, row.new_full((length - len(row),), eos)]) for row in row_labels])
        return embeds, out_labels

    def forward(self, batch: dict, masking: Any,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, MaskedBatch]:
        """Loss of one micro-batch under ``masking``, and the ``MaskedBatch`` it drew."""
        embeds, labels = self.embed(batch)  # [B, T, D], [B, T]: the vision encoder ran here, once
        if self.max_length is not None:  # model_max_length: truncate after the image features are in
            embeds, labels = embeds[:, : self.max_length], labels[:, : self.max_length]  # [B, T<=max, D], [B, T<=max]
        noised = masking({"labels": labels}, generator)
        mask_id = torch.tensor([self.backbone.special_tokens.mask_id], device=embeds.device)
        mask_embed = self.backbone.embed(mask_id)[0]  # [D]
        backbone = self.backbone
        hidden = backbone.hidden_states(inputs_embeds=noised.noise_embeds(embeds, mask_embed))  # [R, T, D]
        return noised.loss_from_hidden(hidden, backbone.head, backbone.vocab_size), noised


class _LooseParameters(nn.Module):
    """The VLM's parameters outside its parts' modules (the image newline), gathered so a part can own them."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        super().__init__()
        self.loose = nn.ParameterList(params)


def enable_gradient_checkpointing(module: nn.Module) -> int:
    """Recompute every transformer block (each ``nn.ModuleList`` entry) in the backward pass.

    The block's ``forward`` is wrapped in place, so parameter names and checkpoints are unchanged.
    Returns how many blocks were wrapped.
    """
    wrapped = 0
    for layers in [m for m in module.modules() if isinstance(m, nn.ModuleList)]:
        for block in layers:
            if getattr(block, "_dvlm_checkpointed", False) or not isinstance(block, nn.Module):
                continue
            forward = block.forward

            def recomputed(*args, _forward=forward, **kwargs):
                if not torch.is_grad_enabled():
                    return _forward(*args, **kwargs)
                return checkpoint(_forward, *args, use_reentrant=False, **kwargs)

            block.forward = recomputed
            block._dvlm_checkpointed = True
            wrapped += 1
    return wrapped
