"""CLIP ViT vision encoders: open_clip's ``VisionTransformer`` or transformers' ``CLIPVisionModel``.

Both return the patch tokens of the selected layer (the class token is dropped, LLaVA's
``mm_vision_select_feature: patch``), with no final norm and no projection. Layers after the selected
one are not built.

Pretrained weights, in each library's format:
- ``open_clip``: a folder with ``open_clip_config.json`` + ``open_clip_model.safetensors`` (the hub
  layout open_clip writes), or a ``.safetensors`` file of a whole CLIP model (``visual.*`` keys) or of
  its visual tower alone;
- ``transformers``: a folder with ``config.json`` + ``model.safetensors`` of a CLIP or CLIP-vision model.

Shape legend:
    N views   S view side   g patches per side   C width
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dvlm.core.dtypes import default_dtype, torch_dtype
from dvlm.core.errors import CheckpointError
from dvlm.core.image import Preprocess
from dvlm.plugins.vision.params import ClipParams
from dvlm.plugins.vision.weights import check_architecture, load_exact, pretrained_path, read_json, read_safetensors


def _architecture(params: ClipParams) -> dict:
    return params.model_dump(include={"image_size", "patch_size", "width", "num_layers", "num_heads", "mlp_ratio"})


class OpenClipEncoder(nn.Module):
    """open_clip ``VisionTransformer`` trunk: views ``[N, 3, S, S]`` -> patch tokens ``[N, g*g, C]``."""

    def __init__(self, params: ClipParams) -> None:
        super().__init__()
        from open_clip.transformer import QuickGELU, VisionTransformer

        self.layers = params.layers_to_run(params.num_layers)
        self.visual = VisionTransformer(
            image_size=params.image_size, patch_size=params.patch_size, width=params.width, layers=self.layers,
            heads=params.num_heads, mlp_ratio=params.mlp_ratio,
            act_layer=QuickGELU if params.activation == "quick_gelu" else nn.GELU,
        )
        self.visual.prune_intermediate_layers(indices=[self.layers - 1], prune_norm=True, prune_head=True)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.visual.forward_intermediates(
            pixels, indices=[self.layers - 1], intermediates_only=True, output_fmt="NLC")
        return out["image_intermediates"][0]  # [N, g*g, C]

    def load_published(self, state: dict[str, torch.Tensor], where: str) -> None:
        if any(k.startswith("visual.") for k in state):
            state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
        own = set(self.visual.state_dict())
        kept = {k: v for k, v in state.items() if k in own or not _is_dropped_open_clip(k)}
        load_exact(self.visual, kept, where)


def _is_dropped_open_clip(name: str) -> bool:
    """Weights of the parts we never build: later blocks, final norm, projection, attention pooler."""
    return name.startswith(("transformer.resblocks.", "ln_post.", "attn_pool")) or name == "proj"


class HFClipEncoder(nn.Module):
    """transformers ``CLIPVisionModel`` trunk: views ``[N, 3, S, S]`` -> patch tokens ``[N, g*g, C]``."""

    def __init__(self, params: ClipParams) -> None:
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModel

        config = CLIPVisionConfig(
            hidden_size=params.width, intermediate_size=int(params.width * params.mlp_ratio),
            num_hidden_layers=params.layers_to_run(params.num_layers), num_attention_heads=params.num_heads,
            image_size=params.image_size, patch_size=params.patch_size, hidden_act=params.activation,
            attn_implementation="sdpa",
        )
        full = CLIPVisionModel(config)
        trunk = getattr(full, "vision_model", full)  # transformers < 5 nests the tower one level deeper
        self.embeddings, self.pre_layrnorm, self.encoder = trunk.embeddings, trunk.pre_layrnorm, trunk.encoder

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.pre_layrnorm(self.embeddings(pixels))  # [N, 1 + g*g, C]
        return self.encoder(inputs_embeds=x).last_hidden_state[:, 1:]  # [N, g*g, C]: class token dropped

    def load_published(self, state: dict[str, torch.Tensor], where: str) -> None:
        if any(k.startswith("vision_model.") for k in state):
            state = {k[len("vision_model."):]: v for k, v in state.items() if k.startswith("vision_model.")}
        own = set(self.state_dict())
        kept = {k: v for k, v in state.items()
                if k in own or not k.startswith(("encoder.layers.", "post_layernorm."))}
        load_exact(self, kept, where)


class ClipEncoder(nn.Module):
    """The ``clip`` kind: one interface over both sources."""

    def __init__(self, params: ClipParams) -> None:
        super().__init__()
        self.params = params
        self.trunk = OpenClipEncoder(params) if params.source == "open_clip" else HFClipEncoder(params)
        self.feature_dim = params.width
        self.image_size = params.image_size
        self.grid_size = params.image_size // params.patch_size
        self.preprocess = Preprocess(params.image_size, params.mean, params.std, "bicubic", "shortest_edge_crop")

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.trunk(pixels.to(self.dtype))


def _open_clip_architecture(folder: Path) -> dict:
    cfg = read_json(folder / "open_clip_config.json").get("model_cfg", {}).get("vision_cfg", {})
    found = {"image_size": cfg.get("image_size"), "patch_size": cfg.get("patch_size"), "width": cfg.get("width"),
             "num_layers": cfg.get("layers"), "num_heads": cfg.get("width", 0) // cfg.get("head_width", 64),
             "mlp_ratio": cfg.get("mlp_ratio", 4.0)}
    return {k: v for k, v in found.items() if v is not None}


def _hf_architecture(folder: Path) -> dict:
    from transformers import CLIPVisionConfig

    raw = read_json(folder / "config.json")
    vision = raw.get("vision_config", raw) if raw.get("model_type") == "clip" else raw
    cfg = CLIPVisionConfig.from_dict({k: v for k, v in vision.items() if k != "model_type"})
    return {"image_size": cfg.image_size, "patch_size": cfg.patch_size, "width": cfg.hidden_size,
            "num_layers": cfg.num_hidden_layers, "num_heads": cfg.num_attention_heads,
            "mlp_ratio": cfg.intermediate_size / cfg.hidden_size}


def build_clip(params: ClipParams) -> ClipEncoder:
    """Registry factory for ``clip``."""
    path = pretrained_path(params)
    with default_dtype(torch_dtype(params.dtype)):
        encoder = ClipEncoder(params)
    if path is not None:
        where = f"vision encoder 'clip' ({params.source}) pretrained={path}"
        if params.source == "open_clip":
            if path.is_dir() and not (path / "open_clip_config.json").is_file():
                raise CheckpointError(f"{where}: an open_clip folder needs open_clip_config.json and "
                                      f"open_clip_model.safetensors (or point at a .safetensors file).")
            if path.is_dir():
                check_architecture(where, _architecture(params), _open_clip_architecture(path))
            state = read_safetensors(path, names=("open_clip_model.safetensors", "model.safetensors"))
        else:
            if path.is_dir():
                check_architecture(where, _architecture(params), _hf_architecture(path))
            state = read_safetensors(path)
        with torch.no_grad():
            encoder.trunk.load_published(state, where)
    return encoder
