"""Multimodal checkpoints: the published LaViDa-LLaDA, LaViDa-Dream and LLaDA-V folders (LLaVA key names), and
dvlm's own multimodal checkpoints (``spec.json`` with a vision encoder + ``model.safetensors`` + tokenizer).

A LLaVA-style folder is recognised from ``config.json`` (``model_type`` ``llava_llada`` with OLMo fields:
LaViDa-LLaDA; ``llava_llada`` with Llama fields: LLaDA-V; ``llava_dream``: LaViDa-Dream). Its model spec is
read off the config (lavida.md 1.8 and 7):

- backbone: the text layout's own reader (``dvlm.core.layouts``) on the same ``config.json``;
- vision encoder: SigLIP (``siglip2`` when ``mm_vision_tower`` names SigLIP 2). The architecture comes from
  ``mm_vision_tower`` when it is a local folder with the SigLIP ``config.json``, else from the published tower
  it names (so400m/14-384); widths, patch size and layer count are checked against the stored tensors.
  ``mm_vision_select_layer`` is the selected layer; the folder holds the (fine-tuned) tower itself;
- projector: ``mm_projector_type``; image layout: ``image_aspect_ratio`` + ``image_grid_pinpoints``
  (``anyres`` pools every view bilinearly, LaViDa's ``ALWASY_DO_2DPOOL`` default; ``anyres_max_<k>`` is
  LLaDA-V's; ``pad`` / ``square`` one view); chat template: ``llada`` or ``dream``; the tokenizer: the folder.

Tensor names: ``model.mm_projector.*`` -> ``projector.*``, ``model.image_newline`` -> ``image_newline``,
``model.vision_tower.vision_tower.vision_model.*`` -> ``vision.*``, the rest through the text layout's
renaming into ``backbone.*``. Stored tensors the model never uses are dropped on purpose and only those:
the tower's ``post_layernorm`` and pooling head, its layers after the selected one, and ``image_newline``
when the layout has no newline. Anything else unknown, or missing, is an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from dvlm.core.dtypes import DTYPES, torch_dtype
from dvlm.core.errors import CheckpointError
from dvlm.core.layouts import CONFIG, SPEC, ConfigFile, dream_key, dream_params, llada_llama_key, llada_llama_params
from dvlm.core.layouts import llada_olmo_key, llada_olmo_params, read_json
from dvlm.core.plugins import get_registry
from dvlm.core.safetensors_io import INDEX, read_header, read_tensor, replace_atomically, save_sharded, shard_files
from dvlm.core.specs import ModelSpec, parse_spec
from dvlm.core.tokenizer import has_tokenizer, load_tokenizer

TOWER = "model.vision_tower.vision_tower."
PROJECTOR = "model.mm_projector."
NEWLINE = "model.image_newline"

#: published vision towers: basename of ``mm_vision_tower`` -> SigLIP architecture (the HF configs)
PUBLISHED_TOWERS = {
    "siglip-so400m-patch14-384": dict(image_size=384, num_layers=27, num_heads=16, layer_norm_eps=1e-6),
    "siglip2-so400m-patch14-384": dict(image_size=384, num_layers=27, num_heads=16, layer_norm_eps=1e-6),
}


@dataclass(frozen=True)
class MultimodalLayout:
    """A published LLaVA-style folder: how to recognise its ``config.json`` and read its backbone part."""

    name: str
    matches: Callable[[dict[str, Any]], bool]
    backbone_params: Callable[[ConfigFile], Any]
    backbone_key: Callable[[str], str]
    chat_template: str


LAYOUTS = [
    MultimodalLayout("lavida-llada", lambda c: c.get("model_type") == "llava_llada" and "d_model" in c,
                     llada_olmo_params, llada_olmo_key, "llada"),
    MultimodalLayout("llada-v", lambda c: c.get("model_type") == "llava_llada" and "hidden_size" in c,
                     llada_llama_params, llada_llama_key, "llada"),
    MultimodalLayout("lavida-dream", lambda c: c.get("model_type") == "llava_dream", dream_params, dream_key, "dream"),
]


def _dvlm_multimodal(folder: Path) -> dict[str, Any] | None:
    """A dvlm ``spec.json`` that needs more than a backbone (a vision encoder or a chat template), else None."""
    spec = folder / SPEC
    if spec.is_file():
        data = read_json(spec)
        return data if data.get("vision_encoder") is not None or data.get("chat_template") is not None else None
    return None


def is_multimodal(folder: str | Path) -> bool:
    """Whether ``folder`` holds a LaViDa / LLaDA-V checkpoint or a multimodal dvlm checkpoint."""
    folder = Path(folder)
    if _dvlm_multimodal(folder) is not None:
        return True
    config = folder / CONFIG
    return not (folder / SPEC).is_file() and config.is_file() and any(
        layout.matches(read_json(config)) for layout in LAYOUTS)


# -- the spec of a LLaVA-style folder -----------------------------------------------------------------


def _tower_shapes(entries: dict[str, Any], where: Path) -> dict[str, int]:
    """Vision widths read off the stored tensors."""
    prefix = TOWER + "vision_model."
    try:
        patch = entries[prefix + "embeddings.patch_embedding.weight"].shape  # [C, 3, p, p]
        positions = entries[prefix + "embeddings.position_embedding.weight"].shape[0]
        fc1 = entries[prefix + "encoder.layers.0.mlp.fc1.weight"].shape  # [I, C]
    except KeyError as err:
        raise CheckpointError(f"{where}: no vision tower tensor {err.args[0]}; is this a LaViDa / LLaDA-V "
                              f"checkpoint with its vision tower?") from None
    layers = {int(m.group(1)) for name in entries
              if (m := re.match(re.escape(prefix) + r"encoder\.layers\.(\d+)\.", name))}
    return dict(hidden_size=patch[0], patch_size=patch[2], intermediate_size=fc1[0], positions=positions,
                stored_layers=max(layers) + 1)


def _vision_params(config: ConfigFile, entries: dict[str, Any], dtype: str) -> Any:
    from dvlm.plugins.vision.params import Siglip2Params, SiglipParams

    tower = str(config.require("mm_vision_tower"))
    if "siglip" not in tower.lower():
        raise CheckpointError(f"{config.path}: mm_vision_tower={tower!r}: only SigLIP towers are supported")
    config.expect(mm_vision_select_feature="patch")
    shapes = _tower_shapes(entries, config.folder)
    if Path(tower).is_dir() and (Path(tower) / "config.json").is_file():
        from dvlm.plugins.vision.siglip import published_architecture

        arch = published_architecture(Path(tower), naflex=False)
    elif Path(tower).name in PUBLISHED_TOWERS:
        arch = {**PUBLISHED_TOWERS[Path(tower).name], "hidden_size": shapes["hidden_size"],
                "intermediate_size": shapes["intermediate_size"], "patch_size": shapes["patch_size"]}
    else:
        raise CheckpointError(
            f"{config.path}: cannot tell the vision tower's architecture: mm_vision_tower={tower!r} is neither a "
            f"local folder with a SigLIP config.json nor one of {', '.join(PUBLISHED_TOWERS)}; point it at the "
            f"SigLIP folder."
        )
    grid = arch["image_size"] // arch["patch_size"]
    found = {k: shapes[k] for k in ("hidden_size", "intermediate_size", "patch_size")}
    if any(arch[k] != v for k, v in found.items()) or grid * grid != shapes["positions"]:
        raise CheckpointError(f"{config.path}: the vision tower tensors ({found}, {shapes['positions']} positions) "
                              f"do not match mm_vision_tower={tower!r} ({arch})")
    if config.get("mm_hidden_size", shapes["hidden_size"]) != shapes["hidden_size"]:
        raise CheckpointError(f"{config.path}: mm_hidden_size={config.data['mm_hidden_size']} but the vision tower "
                              f"is {shapes['hidden_size']} wide")
    cls = Siglip2Params if "siglip2" in tower.lower() else SiglipParams
    params = cls(init="random", select_layer=config.get("mm_vision_select_layer", -2), dtype=dtype,
                 **{k: arch[k] for k in ("image_size", "patch_size", "hidden_size", "intermediate_size", "num_layers",
                                         "num_heads", "layer_norm_eps")})
    if shapes["stored_layers"] < params.layers_to_run(params.num_layers):
        raise CheckpointError(f"{config.path}: the vision tower stores {shapes['stored_layers']} layers but "
                              f"mm_vision_select_layer={params.select_layer} needs "
                              f"{params.layers_to_run(params.num_layers)}")
    return params


def _layout_params(config: ConfigFile, image_size: int) -> dict[str, Any]:
    aspect = config.get("image_aspect_ratio", "square")
    if aspect in ("square", "pad"):
        return {"kind": "single" if aspect == "square" else "pad"}
    config.expect(mm_patch_merge_type="spatial_unpad")
    pinpoints = config.require("image_grid_pinpoints")
    if aspect == "anyres":
        if isinstance(pinpoints, str) or any(w % image_size or h % image_size for w, h in pinpoints):
            raise CheckpointError(f"{config.path}: image_grid_pinpoints {pinpoints} are not multiples of the "
                                  f"{image_size}-px view")
        pool = {"average": "average", "max": "max"}.get(config.get("mm_spatial_pool_mode", "bilinear"), "bilinear")
        return {"kind": "anyres", "grids": [(w // image_size, h // image_size) for w, h in pinpoints], "pool": pool,
                "pool_stride": config.get("mm_spatial_pool_stride", 2)}
    match = re.fullmatch(r"anyres_max_(\d+)", str(aspect))
    grids = re.findall(r"\((\d+)x(\d+)\)", pinpoints) if isinstance(pinpoints, str) else []
    if match and grids and grids[0] == ("1", "1") and grids[-1][0] == grids[-1][1]:
        return {"kind": "anyres_max", "max_views": int(match.group(1)), "max_grid": int(grids[-1][0])}
    raise CheckpointError(f"{config.path}: image_aspect_ratio={aspect!r} with image_grid_pinpoints={pinpoints!r} is "
                          f"not supported (anyres, anyres_max_<k> with '(1x1),...,(nxn)', pad, square)")


def published_spec(folder: Path, layout: MultimodalLayout, config: ConfigFile, entries: dict[str, Any]) -> ModelSpec:
    """The model spec of a LaViDa / LLaDA-V folder."""
    config.expect(mm_use_im_start_end=False, mm_use_im_patch_token=False)
    backbone = layout.backbone_params(config)
    vision = _vision_params(config, entries, backbone.dtype)
    projector = config.get("mm_projector_type", "linear")
    if projector not in ("mlp2x_gelu", "linear"):
        raise CheckpointError(f"{config.path}: mm_projector_type={projector!r} is not supported (mlp2x_gelu, linear)")
    return parse_spec({
        "backbone": backbone.model_dump(), "vision_encoder": vision.model_dump(), "projector": {"kind": projector},
        "image_layout": _layout_params(config, vision.image_size), "chat_template": {"kind": layout.chat_template},
    }, source=str(config.path), as_type="model")


def published_key(layout: MultimodalLayout, name: str) -> str:
    """A LLaVA-style tensor name -> the ``DiffusionVLM`` parameter name."""
    if name.startswith(PROJECTOR):
        return "projector." + name[len(PROJECTOR):]
    if name == NEWLINE:
        return "image_newline"
    if name.startswith(TOWER):
        return "vision." + name[len(TOWER):].removeprefix("vision_model.")
    return "backbone." + layout.backbone_key(name)


def _dropped_on_purpose(target: str) -> bool:
    """Stored tensors the model never uses (see the module docstring)."""
    return target == "image_newline" or target.startswith(
        ("vision.post_layernorm.", "vision.head.", "vision.encoder.layers."))


# -- loading ------------------------------------------------------------------------------------------


def _entries(folder: Path) -> dict[str, Any]:
    return {entry.name: entry for file in shard_files(folder) for entry in read_header(file)}


def _skeleton(spec: ModelSpec, tokenizer: Any) -> nn.Module:
    """The model with the backbone on the meta device (no memory until the weights are assigned)."""
    from dvlm.core.vlm import assemble

    from dvlm.core.checkpoint import skip_init

    factory = get_registry().get("backbones", spec.backbone.kind).factory
    with torch.device("meta"), skip_init():
        backbone = factory(spec.backbone)
    with skip_init():  # every tensor is overwritten by the checkpoint's
        return assemble(spec, backbone, tokenizer)


def _with_dtype(spec: ModelSpec, dtype: str | torch.dtype | None) -> ModelSpec:
    if dtype is None:
        return spec
    name = dtype if isinstance(dtype, str) else {v: k for k, v in DTYPES.items()}.get(dtype, str(dtype))
    torch_dtype(name)  # validates the name
    data = spec.model_dump(mode="json")
    data["backbone"]["dtype"] = name
    if data.get("vision_encoder"):
        data["vision_encoder"]["dtype"] = name
    return parse_spec(data, as_type="model")


def load_multimodal(path: str | Path, *, dtype: str | torch.dtype | None = None,
                    device: str | torch.device = "cpu") -> nn.Module:
    """A ``DiffusionVLM`` from a LaViDa-LLaDA, LaViDa-Dream, LLaDA-V or multimodal dvlm folder."""
    folder = Path(path)
    entries = _entries(folder)
    dvlm_spec = _dvlm_multimodal(folder)
    if dvlm_spec is not None:
        spec = parse_spec(dvlm_spec, source=str(folder / SPEC), as_type="model")
        key: Callable[[str], str] = lambda name: name  # noqa: E731
        dropped: Callable[[str], bool] = lambda target: False  # noqa: E731
        layout_name = "dvlm"
    else:
        data = read_json(folder / CONFIG)
        layout = next(layout for layout in LAYOUTS if layout.matches(data))
        spec = published_spec(folder, layout, ConfigFile(folder, CONFIG, data), entries)
        key = lambda name: published_key(layout, name)  # noqa: E731
        dropped = _dropped_on_purpose
        layout_name = layout.name
    spec = _with_dtype(spec, dtype)
    tokenizer = load_tokenizer(folder) if has_tokenizer(folder) else (
        load_tokenizer(spec.tokenizer) if spec.tokenizer else None)
    model = _skeleton(spec, tokenizer)
    _load_tensors(model, folder, entries, key, dropped, layout_name, device)
    return model.to(device).eval()


def _load_tensors(model: nn.Module, folder: Path, entries: dict[str, Any], key: Callable[[str], str],
                  dropped: Callable[[str], bool], layout: str, device: str | torch.device) -> None:
    expected = model.state_dict(keep_vars=True)
    wanted: dict[str, list[Any]] = {}
    unexpected = []
    for name, entry in entries.items():
        target = key(name)
        if target in expected:
            want = tuple(expected[target].shape)
            if entry.shape != want:
                raise CheckpointError(f"{entry.file}: tensor '{name}' has shape {list(entry.shape)} but the model "
                                      f"built from the folder's config expects {list(want)}")
            wanted.setdefault(str(entry.file), []).append((target, entry))
        elif not dropped(target):
            unexpected.append(name)
    if unexpected:
        raise CheckpointError(f"{folder}: {len(unexpected)} tensor(s) the '{layout}' layout does not know, e.g. "
                              f"{', '.join(unexpected[:5])}")
    loaded = {target for group in wanted.values() for target, _ in group}
    missing = [name for name in expected if name not in loaded]
    if missing:
        raise CheckpointError(f"{folder}: {len(missing)} tensor(s) missing, e.g. {', '.join(missing[:5])} "
                              f"(dvlm names, '{layout}' layout)")
    for file, group in wanted.items():
        with open(file, "rb") as f:
            tensors = {target: read_tensor(f, entry, expected[target].dtype, device) for target, entry in group}
        model.load_state_dict(tensors, strict=False, assign=True)


# -- saving -------------------------------------------------------------------------------------------


def save_multimodal(model: nn.Module, path: str | Path, *, max_shard_bytes: int = 4 << 30) -> Path:
    """Write a ``DiffusionVLM`` as a dvlm checkpoint: ``model.safetensors`` (+ index), the tokenizer files, and
    ``spec.json`` last (each file renamed into place). The spec records the architecture only: the vision
    encoder's weights are in ``model.safetensors``, so its spec says ``init: random`` with no path."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    data = model.spec.model_dump(mode="json")
    data["tokenizer"] = None
    for part, module in (("backbone", model.backbone), ("vision_encoder", model.vision)):
        if module is not None:
            data[part]["dtype"] = {v: k for k, v in DTYPES.items()}[next(module.parameters()).dtype]
    if model.vision is not None:
        data["vision_encoder"].update(init="random", pretrained=None)
    spec = parse_spec(data, as_type="model")
    written = save_sharded(model.state_dict(), folder, max_shard_bytes)
    for stale in [*folder.glob("model*.safetensors"), folder / INDEX]:
        if stale.exists() and stale not in written:
            stale.unlink()
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(folder))
    text = json.dumps(spec.model_dump(mode="json"), indent=2) + "\n"
    replace_atomically(folder / SPEC, lambda tmp: tmp.write_text(text))
    return folder
