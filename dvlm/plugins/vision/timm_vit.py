"""Any timm ViT as a vision encoder, through timm's ``forward_intermediates``.

The model is created by name (``model_args`` passed to ``timm.create_model``), pretrained weights are
loaded into it, then ``prune_intermediate_layers`` removes the blocks after the selected one, the final
norm and the head. The output is the selected block's tokens without prefix (class / register) tokens.

Pretrained weights: a timm hub folder (``config.json`` naming the ``architecture`` + ``model.safetensors``)
or a ``.safetensors`` file in timm's key names. Preprocessing (mean/std, interpolation) comes from the
folder's ``pretrained_cfg`` when there is one, else from the model's default timm data config; views are
resized to the model's input side (``crop_pct`` is not applied: views are already square crops).

Shape legend:
    N views   S view side   g patches per side   C embed dim
"""

from __future__ import annotations

import torch
from torch import nn

from dvlm.core.dtypes import default_dtype, torch_dtype
from dvlm.core.errors import CheckpointError, SpecError
from dvlm.core.image import Preprocess
from dvlm.plugins.vision.params import TimmParams
from dvlm.plugins.vision.weights import load_exact, pretrained_path, read_json, read_safetensors


class TimmEncoder(nn.Module):
    """Views ``[N, 3, S, S]`` -> tokens of the selected block ``[N, g*g, C]``."""

    def __init__(self, params: TimmParams, model: nn.Module, data_cfg: dict) -> None:
        super().__init__()
        self.params = params
        self.model = model
        self.layer = params.layers_to_run(len(model.blocks)) - 1
        self.model.prune_intermediate_layers(indices=[self.layer], prune_norm=True, prune_head=True)
        side_h, side_w = model.patch_embed.img_size
        grid_h, grid_w = model.patch_embed.grid_size
        if side_h != side_w or grid_h != grid_w:
            raise SpecError(f"vision encoder 'timm' {params.model_name}: views must be square, got {side_h}x{side_w}")
        self.feature_dim = model.embed_dim
        self.image_size = side_h
        self.grid_size = grid_h
        interpolation = data_cfg.get("interpolation", "bicubic")
        self.preprocess = Preprocess(
            side_h, tuple(data_cfg["mean"]), tuple(data_cfg["std"]),
            interpolation if interpolation in ("bicubic", "bilinear", "nearest") else "bicubic",
            "squash" if data_cfg.get("crop_mode") == "squash" else "shortest_edge_crop",
        )

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        (tokens,) = self.model.forward_intermediates(
            pixels.to(self.dtype), indices=[self.layer], norm=False, output_fmt="NLC", intermediates_only=True)
        return tokens  # [N, g*g, C]


def build_timm(params: TimmParams) -> TimmEncoder:
    """Registry factory for ``timm``."""
    import timm

    path = pretrained_path(params)
    try:
        with default_dtype(torch_dtype(params.dtype)):
            model = timm.create_model(params.model_name, pretrained=False, **params.model_args)
    except RuntimeError as err:  # timm raises RuntimeError for unknown model names
        raise SpecError(f"vision encoder 'timm': {err}. See timm.list_models().") from None
    except TypeError as err:
        raise SpecError(f"vision encoder 'timm' {params.model_name}: bad model_args ({err}).") from None
    if not hasattr(model, "forward_intermediates") or not hasattr(model, "blocks"):
        raise SpecError(f"vision encoder 'timm': {params.model_name} is not a ViT with forward_intermediates.")
    data_cfg = timm.data.resolve_model_data_config(model)
    if path is not None:
        where = f"vision encoder 'timm' pretrained={path}"
        if path.is_dir() and (path / "config.json").is_file():
            config = read_json(path / "config.json")
            architecture = config.get("architecture")
            if architecture is not None and architecture.split(".")[0] != params.model_name.split(".")[0]:
                raise CheckpointError(f"{where}: the folder holds '{architecture}', the spec asks for "
                                      f"'{params.model_name}'; set model_name to match.")
            data_cfg = {**data_cfg, **config.get("pretrained_cfg", {})}
        with torch.no_grad():
            load_exact(model, read_safetensors(path), where)
    return TimmEncoder(params, model, data_cfg)
