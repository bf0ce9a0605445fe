"""SigLIP and SigLIP 2 vision encoders on transformers, cut the LaViDa / LLaDA-V way.

The encoder keeps only the embeddings and the first ``layers_to_run`` layers of transformers'
``SiglipVisionModel`` (or ``Siglip2VisionModel`` for NaFlex): the layers after ``select_layer``, the
post-layernorm and the attention-pooling head are never built, which is exactly what LaViDa and LLaDA-V
do (they delete ``encoder.layers[-1:]`` and read the last hidden state without ``post_layernorm``).

Pretrained weights: a transformers folder (``config.json`` + ``model.safetensors``) of a SigLIP model
(full, ``model_type: siglip``, or vision-only), e.g. google/siglip-so400m-patch14-384.

Shape legend:
    N views   S view side (pixels)   p patch side   g = S // p patches per side   C hidden size
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dvlm.core.dtypes import default_dtype, torch_dtype
from dvlm.core.image import Preprocess
from dvlm.plugins.vision.params import Siglip2Params, SiglipParams
from dvlm.plugins.vision.weights import check_architecture, load_exact, pretrained_path, read_json, read_safetensors

#: Our module's parameter names -> the published ``vision_model.*`` names: strip or add this prefix.
PUBLISHED_PREFIX = "vision_model."


def _hf_config(params: SiglipParams, layers: int):
    common = dict(
        hidden_size=params.hidden_size, intermediate_size=params.intermediate_size, num_hidden_layers=layers,
        num_attention_heads=params.num_heads, patch_size=params.patch_size, layer_norm_eps=params.layer_norm_eps,
        vision_use_head=False, attn_implementation="sdpa",
    )
    if isinstance(params, Siglip2Params) and params.variant == "naflex":
        from transformers import Siglip2VisionConfig

        return Siglip2VisionConfig(num_patches=params.position_grid ** 2, **common)
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(image_size=params.image_size, **common)


def published_architecture(folder: Path, naflex: bool) -> dict:
    """The vision architecture of a transformers SigLIP folder, with transformers' defaults filled in."""
    raw = read_json(folder / "config.json")
    vision = raw.get("vision_config", raw) if raw.get("model_type") in ("siglip", "siglip2") else raw
    if naflex:
        from transformers import Siglip2VisionConfig as Config
    else:
        from transformers import SiglipVisionConfig as Config
    cfg = Config.from_dict({k: v for k, v in vision.items() if k != "model_type"})
    found = dict(hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size, num_layers=cfg.num_hidden_layers,
                 num_heads=cfg.num_attention_heads, patch_size=cfg.patch_size, layer_norm_eps=cfg.layer_norm_eps)
    if naflex:
        found["position_grid"] = int(round(cfg.num_patches ** 0.5))
    else:
        found["image_size"] = cfg.image_size
    return found


class SiglipEncoder(nn.Module):
    """Views ``[N, 3, S, S]`` -> features of the selected layer ``[N, g*g, C]``."""

    def __init__(self, params: SiglipParams) -> None:
        super().__init__()
        self.params = params
        self.naflex = isinstance(params, Siglip2Params) and params.variant == "naflex"
        layers = params.layers_to_run(params.num_layers)
        if self.naflex:
            from transformers import Siglip2VisionModel as Model
        else:
            from transformers import SiglipVisionModel as Model
        full = Model(_hf_config(params, layers))
        trunk = getattr(full, "vision_model", full)  # transformers < 5 nests the tower one level deeper
        self.embeddings = trunk.embeddings
        self.encoder = trunk.encoder
        self.feature_dim = params.hidden_size
        self.image_size = params.image_size
        self.grid_size = params.image_size // params.patch_size
        self.preprocess = Preprocess(params.image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", "squash")

    @property
    def dtype(self) -> torch.dtype:
        return self.embeddings.patch_embedding.weight.dtype

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.to(self.dtype)
        if self.naflex:
            N, _, H, W = pixels.shape
            p = self.params.patch_size
            gh, gw = H // p, W // p
            patches = pixels[:, :, : gh * p, : gw * p].reshape(N, 3, gh, p, gw, p)  # [N, 3, gh, p, gw, p]
            patches = patches.permute(0, 2, 4, 3, 5, 1).reshape(N, gh * gw, p * p * 3)  # [N, gh*gw, p*p*3]
            shapes = torch.tensor([[gh, gw]] * N, device=pixels.device)
            x = self.embeddings(patches, shapes)  # [N, gh*gw, C]
        else:
            x = self.embeddings(pixels)  # [N, g*g, C]
        return self.encoder(inputs_embeds=x).last_hidden_state  # [N, g*g, C]

    def load_published(self, state: dict[str, torch.Tensor], where: str) -> None:
        """Load ``vision_model.*`` (or unprefixed) SigLIP weights; layers after the selected one, the
        post-layernorm, the pooling head and any text tower are dropped on purpose."""
        own = {}
        for name, tensor in state.items():
            name = name[len(PUBLISHED_PREFIX):] if name.startswith(PUBLISHED_PREFIX) else name
            if name.startswith(("embeddings.", "encoder.")):
                own[name] = tensor
        kept = set(self.state_dict())
        own = {k: v for k, v in own.items() if k in kept or not k.startswith("encoder.layers.")}
        load_exact(self, own, where)


def build_siglip(params: SiglipParams) -> SiglipEncoder:
    """Registry factory for ``siglip`` and ``siglip2``."""
    folder = pretrained_path(params)
    with default_dtype(torch_dtype(params.dtype)):
        encoder = SiglipEncoder(params)
    if folder is not None:
        where = f"vision encoder '{params.kind}' pretrained={folder}"
        if folder.is_dir():
            expected = params.model_dump(include={"hidden_size", "intermediate_size", "num_layers", "num_heads",
                                                  "patch_size", "image_size", "position_grid"})
            if not encoder.naflex:
                expected.pop("position_grid", None)
            check_architecture(where, expected, published_architecture(folder, encoder.naflex))
        with torch.no_grad():
            encoder.load_published(read_safetensors(folder), where)
    return encoder
