"""Load a model from a checkpoint folder (any registered checkpoint layout); save dvlm checkpoints.

``load_pretrained`` asks the registry which ``checkpoint_layouts`` kind claims the folder (exactly one may),
lets it read the folder (``CheckpointReading``: model spec, tensor renaming, tokenizer), builds the model on the
``meta`` device (no memory, no random init), then reads every tensor from the safetensors shards straight into
the memory that becomes the parameter (``load_state_dict(assign=True)``), so peak memory is the weights plus one
tensor. Pickle is never used and no code from the folder is run (no ``trust_remote_code``). A hub id
(``GSAI-ML/LLaDA-V``) is resolved to a local snapshot first (``dvlm.core.hub``).

dvlm's own checkpoint format lives here too (core owns it; the ``dvlm`` layout kind registers it):
``spec.json`` (the model spec), ``model.safetensors`` (sharded with an index when large) and the tokenizer files,
each written under a temporary name renamed into place, ``spec.json`` last.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from dvlm.core.checkpoint_config import CONFIG, SPEC, read_json
from dvlm.core.dtypes import DTYPES, torch_dtype
from dvlm.core.errors import CheckpointError
from dvlm.core.interfaces import CheckpointLayout, CheckpointReading
from dvlm.core.plugins import get_registry
from dvlm.core.safetensors_io import INDEX, read_header, read_tensor, replace_atomically, save_sharded, shard_files
from dvlm.core.specs import ModelSpec, parse_spec

_INIT_FUNCTIONS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_", "kaiming_normal_",
    "xavier_uniform_", "xavier_normal_",
)
#: tensors some exporters add that are recomputed, never loaded
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)
FAMILY = "checkpoint_layouts"


# -- which layout -------------------------------------------------------------------------------------


def checkpoint_layouts() -> dict[str, CheckpointLayout]:
    """Every registered checkpoint layout, built with its default params: kind -> layout."""
    registry = get_registry()
    return {entry.kind: registry.build(FAMILY, entry.params()) for entry in registry.entries(FAMILY)}


def get_layout(kind: str) -> CheckpointLayout:
    """One layout by kind (or alias); an unknown kind lists the registered ones."""
    entry = get_registry().get(FAMILY, kind)
    return entry.factory(entry.params())


def detect_layout(folder: Path) -> tuple[str, CheckpointLayout]:
    """The one registered layout that claims ``folder``; none or two claiming it is an error."""
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    check_unambiguous(folder)
    layouts = checkpoint_layouts()
    claims = [(kind, layout) for kind, layout in layouts.items() if layout.detect(folder)]
    if len(claims) > 1:
        origins = [f"'{kind}' ({get_registry().get(FAMILY, kind).origin})" for kind, _ in claims]
        raise CheckpointError(f"{folder}: claimed by more than one checkpoint layout: {' and '.join(origins)}. "
                              f"Disable one of the plugins with DVLM_DISABLE_PLUGINS.")
    if claims:
        return claims[0]
    supported = "\n".join(f"  - {kind}: {layout.summary}" for kind, layout in layouts.items())
    config = folder / CONFIG
    if config.is_file():
        data = read_json(config)
        found = f"{config} has model_type={data.get('model_type')!r}, architectures={data.get('architectures')!r}"
    else:
        found = f"{folder} has neither {CONFIG} nor {SPEC}"
    raise CheckpointError(f"unrecognised checkpoint layout: {found}. Supported layouts:\n{supported}")


def check_unambiguous(folder: Path) -> None:
    """A folder with both ``spec.json`` and ``config.json`` is two checkpoints at once: say so, before the
    layouts are asked (both the dvlm layout and a published one would claim it)."""
    if (folder / SPEC).is_file() and (folder / CONFIG).is_file():
        raise CheckpointError(
            f"{folder} holds both {SPEC} (a dvlm checkpoint) and {CONFIG} (a published layout), so which "
            "model it is is ambiguous; move one of them out (dvlm convert writes a dvlm checkpoint to a new folder)"
        )


def check_destination(folder: Path, overwrite: bool = False) -> None:
    """Refuse to write a checkpoint into a folder that already holds one (writing replaces its weight files),
    unless ``overwrite``; called before anything is written, so a refusal loses nothing."""
    folder = Path(folder)
    if overwrite or not folder.exists():
        return
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: exists and is not a folder; choose a folder path to write the checkpoint")
    files = [p.name for p in (*sorted(folder.glob("model*.safetensors")), folder / INDEX, folder / CONFIG,
                              folder / SPEC) if p.is_file()]
    claims = [kind for kind, layout in checkpoint_layouts().items() if layout.detect(folder)]
    if files or claims:
        held = f"a '{claims[0]}' checkpoint" if len(claims) == 1 else "checkpoint files"
        raise CheckpointError(
            f"{folder} already holds {held} ({', '.join(files) or 'detected by its layout'}); writing into it would "
            "replace its weights. Choose a new destination folder, or pass --overwrite (CLI) / overwrite=True (API) "
            "to replace that checkpoint")


# -- loading ------------------------------------------------------------------------------------------


def load_pretrained(path: str | Path, *, dtype: str | torch.dtype | None = None, device: str | torch.device = "cpu",
                    text_after_image: str | None = None) -> nn.Module:
    """A ``DiffusionVLM`` (backbone, tokenizer, chat template, vision parts) from a checkpoint folder or hub id.

    ``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"`` or the torch dtype) defaults to the stored one;
    ``text_after_image`` (``"keep"`` or ``"llava_inference"``) overrides the layout's choice for the text right
    after each ``<image>`` (published LaViDa / LLaDA-V folders: ``llava_inference``, as their reference
    inference; see ``dvlm.core.tokenizer``).
    """
    from dvlm.core.hub import resolve_folder

    folder = resolve_folder(path)
    kind, layout = detect_layout(folder)
    reading = layout.read(folder)
    spec = with_dtype(reading.spec, dtype)
    if text_after_image is not None:
        spec = parse_spec({**spec.model_dump(mode="json"), "text_after_image": text_after_image}, as_type="model")
    model = skeleton(spec, reading.tokenizer)
    config = folder / CONFIG if (folder / CONFIG).is_file() else folder / SPEC
    load_tensors(model, folder, reading, kind, config, device)
    return model.to(device).eval()


def with_dtype(spec: ModelSpec, dtype: str | torch.dtype | None) -> ModelSpec:
    """``spec`` with the backbone (and vision encoder) in ``dtype``; None keeps the stored one."""
    if dtype is None:
        return spec
    name = dtype if isinstance(dtype, str) else {v: k for k, v in DTYPES.items()}.get(dtype, str(dtype))
    try:
        torch_dtype(name)
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    data = spec.model_dump(mode="json")
    data["backbone"]["dtype"] = name
    if data.get("vision_encoder"):
        data["vision_encoder"]["dtype"] = name
    return parse_spec(data, as_type="model")


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


def skeleton(spec: ModelSpec, tokenizer: Any) -> nn.Module:
    """The ``DiffusionVLM`` of ``spec`` with the backbone on the meta device (no memory until weights load)."""
    from dvlm.core.vlm import assemble

    factory = get_registry().get("backbones", spec.backbone.kind).factory  # imported outside the meta context
    with torch.device("meta"), skip_init():
        backbone = factory(spec.backbone)
    with skip_init():  # every tensor is overwritten by the checkpoint's
        return assemble(spec, backbone, tokenizer)


def load_tensors(model: nn.Module, folder: Path, reading: CheckpointReading, layout: str, config: Path,
                 device: str | torch.device) -> None:
    """Materialise every parameter of ``model`` from the folder's shards, shard by shard."""
    expected = dict(model.state_dict(keep_vars=True))
    loaded: set[str] = set()
    unexpected: list[str] = []
    for file in shard_files(folder):
        tensors = {}
        with open(file, "rb") as f:
            for entry in read_header(file):
                target = reading.rename(entry.name)
                if target not in expected:
                    if not (reading.unused(target) or entry.name.endswith(_IGNORED_SUFFIXES)):
                        unexpected.append(entry.name)
                    continue
                want = tuple(expected[target].shape)
                if entry.shape != want:
                    raise CheckpointError(
                        f"{file}: tensor '{entry.name}' has shape {list(entry.shape)} but the model built from "
                        f"{config} expects {list(want)}; the config and the weights do not match"
                    )
                tensors[target] = read_tensor(f, entry, expected[target].dtype, device)
        model.load_state_dict(tensors, strict=False, assign=True)
        loaded.update(tensors)
    if unexpected:
        raise CheckpointError(f"{folder}: {len(unexpected)} tensor(s) the '{layout}' layout does not know, e.g. "
                              f"{', '.join(unexpected[:5])}; is this the right layout?")
    missing = [name for name in expected if name not in loaded]
    if missing:
        raise CheckpointError(f"{folder}: {len(missing)} tensor(s) missing from the weights, e.g. "
                              f"{', '.join(missing[:5])} (dvlm names, '{layout}' layout)")


# -- writing ------------------------------------------------------------------------------------------


def dtype_name(module: nn.Module) -> str:
    dtype = next(module.parameters()).dtype
    name = {v: k for k, v in DTYPES.items()}.get(dtype)
    if name is None:
        raise CheckpointError(f"cannot save a model in {dtype}; convert it to one of {', '.join(DTYPES)}")
    return name


def write_tensors(state: dict[str, torch.Tensor], folder: Path, max_shard_bytes: int) -> None:
    """Safetensors shards (+ index) of ``state`` in ``folder``; weight files of an earlier save are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    written = save_sharded(state, folder, max_shard_bytes)
    for stale in [*folder.glob("model*.safetensors"), folder / INDEX]:
        if stale.exists() and stale not in written:
            stale.unlink()


def write_tokenizer(model: nn.Module, folder: Path) -> None:
    """The model's tokenizer files (with its chat template) into ``folder``."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    replace_atomically(path, lambda tmp: tmp.write_text(text))


def as_vlm(model: nn.Module) -> nn.Module:
    """A bare backbone (``.params``) wrapped as a text-only ``DiffusionVLM``; a ``DiffusionVLM`` unchanged."""
    if hasattr(model, "spec"):
        return model
    from dvlm.core.vlm import assemble

    return assemble(ModelSpec(backbone=model.params), model)


def save_pretrained(model: nn.Module, path: str | Path, *, max_shard_bytes: int = 4 << 30,
                    overwrite: bool = False) -> Path:
    """Write ``model`` as a dvlm checkpoint that ``load_pretrained`` reloads exactly: ``model.safetensors``
    (+ index), the tokenizer files, and ``spec.json`` last. The spec records the architecture and the stored
    dtype: the vision encoder's weights are in ``model.safetensors``, so its spec says ``init: random``.
    A folder already holding a checkpoint is refused unless ``overwrite`` (which replaces it)."""
    model = as_vlm(model)
    folder = Path(path)
    check_destination(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    data = model.spec.model_dump(mode="json")
    data["tokenizer"] = None
    for part, module in (("backbone", model.backbone), ("vision_encoder", model.vision)):
        if module is not None:
            data[part]["dtype"] = dtype_name(module)
    if model.vision is not None:
        data["vision_encoder"].update(init="random", pretrained=None)
    spec = parse_spec(data, as_type="model")
    write_tensors(model.state_dict(), folder, max_shard_bytes)
    write_tokenizer(model, folder)
    (folder / CONFIG).unlink(missing_ok=True)  # an overwritten published folder's config would make it ambiguous
    write_json(folder / SPEC, spec.model_dump(mode="json"))
    return folder


def read_dvlm_checkpoint(folder: Path) -> CheckpointReading:
    """A dvlm checkpoint folder: its ``spec.json``, identity tensor names, the tokenizer files beside them."""
    from dvlm.core.tokenizer import has_tokenizer, load_tokenizer

    spec = parse_spec(read_json(folder / SPEC), source=str(folder / SPEC), as_type="model")
    tokenizer = load_tokenizer(folder) if has_tokenizer(folder) else (
        load_tokenizer(spec.tokenizer) if spec.tokenizer else None)
    return CheckpointReading(spec=spec, rename=lambda name: name, tokenizer=tokenizer, dtype_source="spec.json")

