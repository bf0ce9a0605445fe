"""Load a model from a local checkpoint folder (any supported layout); save dvlm checkpoints.

Loading builds the model on the ``meta`` device (no memory, no random init), then reads every
tensor from the safetensors shards straight into the memory that becomes the parameter
(``load_state_dict(assign=True)``), so peak memory is the weights plus one tensor. Pickle is never
used and no code from the folder is run (no ``trust_remote_code``).

Saving writes ``model.safetensors`` (sharded with an index when large) and ``spec.json`` (the
model spec), each under a temporary name renamed into place; ``spec.json`` is written last.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from dvlm.core.dtypes import DTYPES, torch_dtype
from dvlm.core.errors import CheckpointError
from dvlm.core.layouts import SPEC, Layout, detect_layout
from dvlm.core.plugins import get_registry
from dvlm.core.safetensors_io import INDEX, read_header, read_tensor, replace_atomically, save_sharded, shard_files
from dvlm.core.specs import ModelSpec

_INIT_FUNCTIONS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_", "kaiming_normal_",
    "xavier_uniform_", "xavier_normal_",
)
#: tensors some exporters add that are recomputed, never loaded
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def load_pretrained(
    path: str | Path, *, dtype: str | torch.dtype | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """A model from a checkpoint folder, its layout detected from ``config.json`` / ``spec.json``.

    ``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"`` or the torch dtype) defaults to the
    stored one. The model returns logits ``[B, T, V]`` from ``input_ids`` or ``inputs_embeds``.
    """
    folder = Path(path)
    if (folder / "spec.json").is_file() and (folder / "config.json").is_file():
        raise CheckpointError(
            f"{folder} holds both spec.json (a dvlm checkpoint) and config.json (a published layout), so which "
            "model it is is ambiguous; move one of them out (dvlm convert writes a dvlm checkpoint to a new folder)"
        )
    from dvlm.core.vlm_checkpoint import is_multimodal, load_multimodal  # LaViDa, LLaDA-V, multimodal dvlm folders

    if is_multimodal(folder):
        return load_multimodal(folder, dtype=dtype, device=device)
    layout, config = detect_layout(folder)
    params = layout.params(config)
    if dtype is not None:
        name = dtype if isinstance(dtype, str) else {v: k for k, v in DTYPES.items()}.get(dtype, str(dtype))
        torch_dtype(name)  # validates the name
        params = type(params).model_validate({**params.model_dump(), "dtype": name})
    factory = get_registry().get("backbones", params.kind).factory  # imported outside the meta context
    with torch.device("meta"), skip_init():
        model = factory(params)
    load_weights(model, folder, layout, torch_dtype(params.dtype), device)
    return model.eval()


@contextmanager
def skip_init() -> Iterator[None]:
    """Skip ``torch.nn.init``'s random fills while building a model whose weights will be loaded.

    On the meta device they are no-ops anyway, but running them imports torch's Python meta
    kernels (sympy, mpmath, ...): about 190 MB of resident memory and a second of start-up.
    """
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
    for name in _INIT_FUNCTIONS:
        setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def load_weights(model: nn.Module, folder: Path, layout: Layout, dtype: torch.dtype, device: str | torch.device) -> None:
    """Materialise every parameter of a meta-device ``model`` from the folder's shards, shard by shard."""
    expected = dict(model.state_dict(keep_vars=True))
    loaded: set[str] = set()
    unexpected: list[str] = []
    for file in shard_files(folder):
        tensors = {}
        with open(file, "rb") as f:
            for entry in read_header(file):
                target = layout.key(entry.name)
                if target not in expected:
                    if not entry.name.endswith(_IGNORED_SUFFIXES):
                        unexpected.append(entry.name)
                    continue
                want = tuple(expected[target].shape)
                if entry.shape != want:
                    raise CheckpointError(
                        f"{file}: tensor '{entry.name}' has shape {list(entry.shape)} but the model built from "
                        f"{folder / layout.config_file} expects {list(want)}; the config and the weights do not match"
                    )
                tensors[target] = read_tensor(f, entry, dtype, device)
        model.load_state_dict(tensors, strict=False, assign=True)
        loaded.update(tensors)
    if unexpected:
        raise CheckpointError(
            f"{folder}: {len(unexpected)} tensor(s) the '{layout.name}' layout does not know, e.g. "
            f"{', '.join(unexpected[:5])}; is this the right layout?"
        )
    missing = [name for name in expected if name not in loaded]
    if missing:
        raise CheckpointError(
            f"{folder}: {len(missing)} tensor(s) missing from the weights, e.g. {', '.join(missing[:5])} "
            f"(dvlm names, '{layout.name}' layout)"
        )


def save_pretrained(model: nn.Module, path: str | Path, *, max_shard_bytes: int = 4 << 30) -> None:
    """Write ``model`` (a backbone with ``.params``) as a dvlm checkpoint that ``load_pretrained`` reloads exactly."""
    if hasattr(model, "spec"):  # a DiffusionVLM: its spec, weights and tokenizer (dvlm.core.vlm_checkpoint)
        from dvlm.core.vlm_checkpoint import save_multimodal

        save_multimodal(model, path, max_shard_bytes=max_shard_bytes)
        return
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = {v: k for k, v in DTYPES.items()}.get(model.dtype)
    if dtype is None:
        raise CheckpointError(f"cannot save a model in {model.dtype}; convert it to one of {', '.join(DTYPES)}")
    params = type(model.params).model_validate({**model.params.model_dump(), "dtype": dtype})
    written = save_sharded(model.state_dict(), folder, max_shard_bytes)
    for stale in [*folder.glob("model*.safetensors"), folder / INDEX]:
        if stale.exists() and stale not in written:
            stale.unlink()
    spec = ModelSpec(backbone=params).model_dump(mode="json")
    replace_atomically(folder / SPEC, lambda tmp: tmp.write_text(json.dumps(spec, indent=2) + "\n"))
