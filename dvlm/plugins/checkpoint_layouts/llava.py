"""LLaVA-style multimodal layouts: LaViDa-LLaDA (``llava_llada`` + OLMo fields), LLaDA-V (``llava_llada`` + Llama
fields) and LaViDa-Dream (``llava_dream``). The model spec is read off ``config.json`` (lavida.md 1.8 and 7):

- backbone: the text format's own reader on the same ``config.json`` (special tokens decided in one place);
- vision encoder: SigLIP (``siglip2`` when ``mm_vision_tower`` names SigLIP 2). The architecture comes from
  ``mm_vision_tower`` when it is a folder with the SigLIP ``config.json`` (absolute, or relative to the
  checkpoint), else from the published tower it names (so400m/14-384); widths, patch size and layer count are
  checked against the stored tensors. The folder holds the (fine-tuned) tower itself;
- projector: ``mm_projector_type``; image layout: ``image_aspect_ratio`` + ``image_grid_pinpoints`` (a list of
  ``[w, h]`` pixel pairs, LLaDA-V's ``"(1x1),...,(6x6)"`` string, or that string expanded to ``[w, h]`` pairs
  as LLaDA-V's ``train.py`` saves it); chat template: the LLaVA conversation of the family (``conv_llava_llada``
  / ``conv_dream``: the vision-assistant system turn); the ``\\n`` after ``<image>`` as the reference inference
  (``text_after_image: llava_inference``, overridable in ``load_pretrained``).

Tensor names: ``model.mm_projector.*`` -> ``projector.*``, ``model.image_newline`` -> ``image_newline``,
``model.vision_tower.vision_tower.vision_model.*`` -> ``vision.*``, the rest through the text format into
``backbone.*``. Stored tensors the model never uses are dropped on purpose and only those: the tower's
``post_layernorm`` and pooling head, its layers after the selected one, and ``image_newline`` when the image
layout has no newline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dvlm.core.checkpoint import check_destination, dtype_name, write_json, write_tensors, write_tokenizer
from dvlm.core.checkpoint_config import CONFIG, ConfigFile, read_optional_json
from dvlm.core.errors import CheckpointError
from dvlm.core.interfaces import CheckpointReading
from dvlm.core.safetensors_io import read_header, shard_files
from dvlm.core.specs import parse_spec
from dvlm.plugins.checkpoint_layouts.text import (
    TextFormat,
    check_fits,
    read_backbone,
    read_tokenizer,
    write_published_configs,
)

TOWER = "model.vision_tower.vision_tower."
PROJECTOR = "model.mm_projector."
NEWLINE = "model.image_newline"
#: published vision towers: basename of ``mm_vision_tower`` -> SigLIP architecture (the HF configs)
PUBLISHED_TOWERS = {
    "siglip-so400m-patch14-384": dict(image_size=384, num_layers=27, num_heads=16, layer_norm_eps=1e-6),
    "siglip2-so400m-patch14-384": dict(image_size=384, num_layers=27, num_heads=16, layer_norm_eps=1e-6),
}


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
    local = next((p for p in (Path(tower), config.folder / tower) if (p / "config.json").is_file()), None)
    if local is not None:
        from dvlm.plugins.vision.siglip import published_architecture

        arch = published_architecture(local, naflex=False)
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


def pinpoint_grids(pinpoints: Any) -> list[tuple[int, int]] | None:
    """``"(1x1),...,(6x6)"`` -> every grid from 1x1 to 6x6; a list of ``[w, h]`` pixel pairs is returned as is
    (as pairs); anything else None."""
    if isinstance(pinpoints, str):
        found = [(int(a), int(b)) for a, b in re.findall(r"\((\d+)x(\d+)\)", pinpoints)]
        if len(found) >= 2 and found[0] == (1, 1) and found[-1][0] == found[-1][1]:
            n = found[-1][0]
            return [(i, j) for i in range(1, n + 1) for j in range(1, n + 1)]
        return None
    if isinstance(pinpoints, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pinpoints):
        return [(int(w), int(h)) for w, h in pinpoints]
    return None


def _image_layout_params(config: ConfigFile, image_size: int) -> dict[str, Any]:
    aspect = config.get("image_aspect_ratio", "square")
    if aspect in ("square", "pad"):
        return {"kind": "single" if aspect == "square" else "pad"}
    config.expect(mm_patch_merge_type="spatial_unpad")
    raw = config.require("image_grid_pinpoints")
    pinpoints = pinpoint_grids(raw)
    if aspect == "anyres" and pinpoints is not None and not isinstance(raw, str):
        if any(w % image_size or h % image_size for w, h in pinpoints):
            raise CheckpointError(f"{config.path}: image_grid_pinpoints {raw} are not multiples of the "
                                  f"{image_size}-px view")
        pool = {"average": "average", "max": "max"}.get(config.get("mm_spatial_pool_mode", "bilinear"), "bilinear")
        return {"kind": "anyres", "grids": [(w // image_size, h // image_size) for w, h in pinpoints], "pool": pool,
                "pool_stride": config.get("mm_spatial_pool_stride", 2)}
    match = re.fullmatch(r"anyres_max_(\d+)", str(aspect))
    if match and pinpoints:
        # the string form lists grids; the saved (expanded) form lists pixels of the 1x1..nxn grids
        grids = pinpoints if isinstance(raw, str) else [(w // image_size, h // image_size) for w, h in pinpoints]
        n = max(max(g) for g in grids)
        if sorted(grids) == [(i, j) for i in range(1, n + 1) for j in range(1, n + 1)]:
            return {"kind": "anyres_max", "max_views": int(match.group(1)), "max_grid": n}
    raise CheckpointError(f"{config.path}: image_aspect_ratio={aspect!r} with image_grid_pinpoints={raw!r} is "
                          f"not supported (anyres, anyres_max_<k> with '(1x1),...,(nxn)' or its [w, h] pairs, pad, "
                          f"square)")


def _image_layout_config(layout: Any, image_size: int) -> dict[str, Any]:
    """The inverse of ``_image_layout_params``: the LLaVA config fields of a dvlm image layout."""
    if layout.kind in ("single", "pad"):
        return {"image_aspect_ratio": "square" if layout.kind == "single" else "pad"}
    if layout.kind == "anyres":
        return {"image_aspect_ratio": "anyres", "mm_patch_merge_type": "spatial_unpad",
                "image_grid_pinpoints": [[c * image_size, r * image_size] for c, r in layout.grids],
                "mm_spatial_pool_mode": layout.pool, "mm_spatial_pool_stride": layout.pool_stride}
    if layout.kind == "anyres_max":
        n = layout.max_grid
        return {"image_aspect_ratio": f"anyres_max_{layout.max_views}", "mm_patch_merge_type": "spatial_unpad",
                "image_grid_pinpoints": f"(1x1),...,({n}x{n})"}
    raise CheckpointError(f"image layout '{layout.kind}' has no LLaVA config form (single, pad, anyres, anyres_max)")


def _unused(target: str) -> bool:
    """Stored tensors the model never uses (see the module docstring)."""
    return target == "image_newline" or target.startswith(
        ("vision.post_layernorm.", "vision.head.", "vision.encoder.layers."))


class LlavaLayout:
    """A published LLaVA-style folder (``CheckpointLayout``) whose backbone part is a :class:`TextFormat`."""

    keeps_vision = True

    def __init__(self, name: str, summary: str, model_type: str, fmt: TextFormat) -> None:
        self.name, self.summary, self.model_type, self.fmt = name, summary, model_type, fmt

    def detect(self, folder: Path) -> bool:
        config = read_optional_json(folder / CONFIG)
        return config.get("model_type") == self.model_type and self.fmt.matches({**config, "model_type": (
            "llada" if self.model_type == "llava_llada" else "dream")})

    def read(self, folder: Path) -> CheckpointReading:
        config = ConfigFile.read(folder)
        config.expect(mm_use_im_start_end=False, mm_use_im_patch_token=False)
        entries = {entry.name: entry for file in shard_files(folder) for entry in read_header(file)}
        backbone, sources, quirks = read_backbone(config, self.fmt)
        vision = _vision_params(config, entries, backbone.dtype)
        projector = config.get("mm_projector_type", "linear")
        if projector not in ("mlp2x_gelu", "linear"):
            raise CheckpointError(f"{config.path}: mm_projector_type={projector!r} is not supported "
                                  f"(mlp2x_gelu, linear)")
        if not isinstance(config.data.get("image_grid_pinpoints", ""), str):
            quirks.append("image_grid_pinpoints saved as [w, h] pixel pairs (LLaDA-V's train.py expands the "
                          "'(1x1),...' string before saving)")
        quirks.append("the \\n after <image> follows the reference inference (LLaVA's tokenizer_image_token drops "
                      "the first token after each image when the prompt starts with BOS); load_pretrained(..., "
                      "text_after_image='keep') keeps it")
        tokenizer, tokenizer_quirks = read_tokenizer(folder)
        spec = parse_spec({
            "backbone": backbone.model_dump(), "vision_encoder": vision.model_dump(), "projector": {"kind": projector},
            "image_layout": _image_layout_params(config, vision.image_size),
            "chat_template": {"kind": self.fmt.family_template}, "text_after_image": "llava_inference",
        }, source=str(config.path), as_type="model")
        return CheckpointReading(spec=spec, rename=self.key_in, unused=_unused, tokenizer=tokenizer,
                                 dtype_source=config.dtype_source(), special_token_sources=sources,
                                 quirks=(*quirks, *tokenizer_quirks))

    def key_in(self, name: str) -> str:
        """A LLaVA tensor name -> the ``DiffusionVLM`` parameter name."""
        if name.startswith(PROJECTOR):
            return "projector." + name[len(PROJECTOR):]
        if name == NEWLINE:
            return "image_newline"
        if name.startswith(TOWER):
            return "vision." + name[len(TOWER):].removeprefix("vision_model.")
        return "backbone." + self.fmt.key_in(name)

    def key_out(self, name: str) -> str:
        if name.startswith("projector."):
            return PROJECTOR + name[len("projector."):]
        if name == "image_newline":
            return NEWLINE
        if name.startswith("vision."):
            return TOWER + "vision_model." + name[len("vision."):]
        return self.fmt.key_out(name[len("backbone."):])

    def write(self, model: Any, folder: Path, max_shard_bytes: int = 4 << 30, overwrite: bool = False) -> None:
        folder = Path(folder)
        if model.vision is None or model.spec.vision_encoder.kind not in ("siglip", "siglip2"):
            raise CheckpointError(f"the '{self.name}' layout holds a SigLIP vision-language model; this model's "
                                  f"vision encoder is {getattr(model.spec.vision_encoder, 'kind', None)}")
        check_fits(self.name, self.fmt, model)
        check_destination(folder, overwrite)
        params = model.backbone.params.model_copy(update={"dtype": dtype_name(model.backbone)})
        vision = model.spec.vision_encoder
        write_tensors({self.key_out(name): t for name, t in model.state_dict().items()}, folder, max_shard_bytes)
        write_tokenizer(model, folder)
        tower = self._write_tower_config(vision, folder)
        config = {**self.fmt.config(params), "model_type": self.model_type,
                  "architectures": ["LlavaLLaDAModelLM" if self.model_type == "llava_llada" else "LlavaDreamModelLM"],
                  "mm_vision_tower": tower, "use_mm_proj": True, "mm_projector_type": model.spec.projector.kind,
                  "mm_hidden_size": model.vision.feature_dim, "mm_vision_select_layer": vision.select_layer,
                  "mm_vision_select_feature": "patch", "mm_use_im_start_end": False, "mm_use_im_patch_token": False,
                  **_image_layout_config(model.spec.image_layout, vision.image_size)}
        config.pop("auto_map", None)  # the LLaVA classes live in the repositories' llava/ packages
        write_published_configs(folder, config, params)

    @staticmethod
    def _write_tower_config(vision: Any, folder: Path) -> str:
        """``mm_vision_tower``: the published tower's name when the architecture is one, else a SigLIP
        ``config.json`` written under ``<kind>_vision_tower/`` (read back relative to the checkpoint)."""
        name = "google/siglip2-so400m-patch14-384" if vision.kind == "siglip2" else "google/siglip-so400m-patch14-384"
        arch = PUBLISHED_TOWERS[name.split("/")[1]]
        if all(getattr(vision, k) == v for k, v in arch.items()) and vision.patch_size == 14:
            return name
        tower = f"{vision.kind}_vision_tower"
        (folder / tower).mkdir(parents=True, exist_ok=True)
        write_json(folder / tower / "config.json", {
            "model_type": "siglip_vision_model", "hidden_size": vision.hidden_size,
            "intermediate_size": vision.intermediate_size, "num_hidden_layers": vision.num_layers,
            "num_attention_heads": vision.num_heads, "image_size": vision.image_size,
            "patch_size": vision.patch_size, "layer_norm_eps": vision.layer_norm_eps})
        return tower
