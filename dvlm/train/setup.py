"""Building what a training run needs from its spec: the model with its chat template and tokenizer,
and the data folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from torch import nn

from dvlm.core.errors import SpecError
from dvlm.core.plugins import get_registry
from dvlm.train import distributed
from dvlm.train.spec import TrainSpec


def build_model(spec: TrainSpec, processes: distributed.Processes) -> nn.Module:
    """A ``DiffusionVLM`` with random weights from ``spec.model`` or loaded from ``spec.init_from``, with
    the chat template and tokenizer the run trains with attached (so that generation formats prompts the
    way training did)."""
    from dvlm.core.vlm import assemble, build

    if spec.init_from is not None:
        from dvlm.core.checkpoint import load_pretrained

        model = load_pretrained(spec.init_from, dtype="float32")
        if spec.model is not None:  # a backbone checkpoint with the spec's vision parts around it (stage 1)
            if model.vision is not None:
                raise SpecError(f"init_from {spec.init_from} is a whole vision-language checkpoint: drop `model`, "
                                f"or start from a backbone-only checkpoint")
            around = spec.model.model_copy(update={"backbone": model.backbone.params})
            model = assemble(around, model.backbone, tokenizer=model.tokenizer)
    else:
        model = build(spec.model)
    if spec.chat_template is not None:
        model.chat_template = get_registry().build("chat_templates", spec.chat_template)
        model.spec = model.spec.model_copy(update={"chat_template": spec.chat_template})
    if model.chat_template is None:
        raise SpecError("no chat template: set `chat_template` in the train spec or in its model spec "
                        "(e.g. {kind: llada, system_prompt: null})")
    model.tokenizer = resolve_tokenizer(spec, model, processes)
    return model


def resolve_tokenizer(spec: TrainSpec, model: nn.Module, processes: distributed.Processes):
    """``spec.tokenizer``; else the model's own; else the checkpoint folder's; else the tiny character
    tokenizer made for the backbone's special tokens (written once under ``<out_dir>/tokenizer``)."""
    from dvlm.core.tokenizer import has_tokenizer, load_tokenizer

    if spec.tokenizer is not None:
        return load_tokenizer(spec.tokenizer)
    if model.tokenizer is not None:
        return model.tokenizer
    if spec.init_from is not None and has_tokenizer(spec.init_from):
        return load_tokenizer(spec.init_from)
    folder = Path(spec.out_dir) / "tokenizer"
    if processes.main and not has_tokenizer(folder):
        from dvlm.core.tiny_tokenizer import save_tiny_tokenizer_for

        save_tiny_tokenizer_for(folder, model.backbone.params)
    distributed.barrier(processes)
    return load_tokenizer(folder)


def prepare_data_root(spec: TrainSpec, processes: distributed.Processes) -> Path:
    """``spec.data.root``, or the synthetic shapes dataset generated once under ``<out_dir>/data``."""
    if spec.data.root is not None:
        return Path(spec.data.root)
    root = Path(spec.out_dir) / "data"
    if processes.main:
        meta = root / "meta.json"
        wanted = {"n_images": spec.data.synth_images, "seed": spec.data.synth_seed}
        current = json.loads(meta.read_text()) if meta.is_file() else {}
        if {k: current.get(k) for k in wanted} != wanted:
            from dvlm.data.synth_shapes import write_synth_shapes

            write_synth_shapes(root, n=spec.data.synth_images, seed=spec.data.synth_seed)
    distributed.barrier(processes)
    return root


def save_model_fn(model: nn.Module) -> Callable[[Path], None]:
    """How a checkpoint writes the model: a dvlm model checkpoint (``spec.json`` with the chat template
    trained with, ``model.safetensors``, the tokenizer files) that ``dvlm.load_pretrained`` reads; for a
    LoRA run, the trainable tensors alone (``dvlm.train.checkpointing.save_trainable``)."""
    from dvlm.core.checkpoint import save_pretrained
    from dvlm.train.checkpointing import save_trainable
    from dvlm.train.lora import is_lora

    if is_lora(model):
        return lambda folder: save_trainable(model, folder)
    return lambda folder: save_pretrained(model, folder)
