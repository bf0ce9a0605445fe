"""Building what a training run needs from its spec: the model with its chat template and tokenizer,
and the data folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from torch import nn

from dvlm.core.errors import SpecError
from dvlm.core.plugins import get_registry
from dvlm.core.specs import ModelSpec
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
        if spec.model is not None and model.vision is not None:  # a stage-1 export under stage 2's settings
            model = with_checkpoint_weights(spec.model, model, spec.init_from)
        elif spec.model is not None:  # a backbone checkpoint with the spec's vision parts around it (stage 1)
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


def with_checkpoint_weights(model_spec: ModelSpec, loaded: nn.Module, source: str) -> nn.Module:
    """The model of ``model_spec`` (its image layout, chat template and every other non-weight setting)
    holding the weights of ``loaded``, a whole vision-language checkpoint: how a stage-2 run starts from the
    stage-1 export. The backbone, vision encoder and projector must have the checkpoint's tensors (names
    and shapes); ``image_newline`` is the checkpoint's, or fresh when only the new layout uses one."""
    from dvlm.core.checkpoint import skeleton, with_dtype

    vision = model_spec.vision_encoder
    if vision is not None:  # its weights come from the checkpoint, never from `pretrained`
        vision = vision.model_copy(update={"init": "random", "pretrained": None})
    wanted = with_dtype(model_spec.model_copy(update={"vision_encoder": vision}), "float32")
    model = skeleton(wanted, loaded.tokenizer)
    for part, field in (("backbone", "backbone"), ("vision", "vision_encoder"), ("projector", "projector")):
        difference = _tensor_difference(getattr(loaded, part), getattr(model, part))
        if difference:
            raise SpecError(f"init_from {source} is a whole vision-language checkpoint whose {field} differs from "
                            f"`model.{field}` ({difference}); make `model.{field}` match the checkpoint's "
                            f"architecture, or drop `model` to train the checkpoint with its own settings")
    state = {name: tensor for name, tensor in loaded.state_dict().items()
             if name != "image_newline" or model.image_newline is not None}
    model.load_state_dict(state, strict=False, assign=True)  # every part checked above; a new newline stays fresh
    return model


def _tensor_difference(stored: nn.Module | None, wanted: nn.Module | None) -> str:
    """How two modules' tensors (names, shapes) differ, in words; "" when they agree."""
    if stored is None or wanted is None:
        return "" if stored is wanted else f"the checkpoint has {'one' if stored is not None else 'none'}"
    have = {name: tuple(t.shape) for name, t in stored.state_dict().items()}
    want = {name: tuple(t.shape) for name, t in wanted.state_dict().items()}
    for name in sorted(have.keys() | want.keys()):
        if have.get(name) != want.get(name):
            return f"tensor '{name}': checkpoint {_shape(have.get(name))}, model {_shape(want.get(name))}"
    return ""


def _shape(shape: tuple[int, ...] | None) -> str:
    return "absent" if shape is None else str(list(shape))


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
