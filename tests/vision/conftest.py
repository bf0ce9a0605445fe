"""Tiny multimodal specs for the vision tests: a 2-layer LLaDA or Dream, a tiny tokenizer, tiny encoders."""

from __future__ import annotations

import pytest
from PIL import Image

from dvlm.core.tiny_tokenizer import save_tiny_tokenizer_for
from dvlm.plugins.backbones.params import DreamParams, LladaParams

#: the tiny encoder of each vision kind: 28-px views, 14-px patches -> 2x2 tokens of width 32
ENCODERS = {
    "siglip": {"kind": "siglip", "init": "random", "image_size": 28, "patch_size": 14, "hidden_size": 32,
               "intermediate_size": 64, "num_layers": 2, "num_heads": 2, "dtype": "float32"},
    "clip": {"kind": "clip", "init": "random", "image_size": 28, "patch_size": 14, "width": 32, "num_layers": 2,
             "num_heads": 2, "dtype": "float32"},
    "timm": {"kind": "timm", "init": "random", "model_name": "vit_tiny_patch16_224", "dtype": "float32",
             "model_args": {"img_size": 28, "patch_size": 14, "embed_dim": 32, "depth": 2, "num_heads": 2}},
}


def backbone_params(kind: str = "llada", **overrides):
    """The backbone's ``for_tests`` params with room for the character-level system prompt (1024 positions)."""
    params = (LladaParams if kind == "llada" else DreamParams).for_tests()
    context = {"max_sequence_length" if kind == "llada" else "max_position_embeddings": 1024}
    return type(params).model_validate({**params.model_dump(), **context, **overrides})


@pytest.fixture
def tokenizer_dir(tmp_path_factory):
    """A tiny tokenizer folder for each backbone kind (same special-token ids as ``backbone_params``)."""
    def make(kind: str = "llada"):
        return str(save_tiny_tokenizer_for(tmp_path_factory.mktemp(f"tok_{kind}"), backbone_params(kind)))
    return make


@pytest.fixture
def vlm_spec(tokenizer_dir):
    """A multimodal spec dict; keyword arguments replace its parts."""
    def make(backbone: str = "llada", encoder: str = "siglip", layout=None, **parts):
        spec = {
            "backbone": backbone_params(backbone).model_dump(),
            "vision_encoder": ENCODERS[encoder],
            "projector": {"kind": "mlp2x_gelu"},
            "image_layout": layout or {"kind": "anyres"},
            "chat_template": {"kind": backbone, "system_prompt": None},  # short prompts: fast tests
            "tokenizer": tokenizer_dir(backbone),
        }
        spec.update(parts)
        return spec
    return make


@pytest.fixture
def image():
    def make(width: int = 50, height: int = 30, colour=(200, 40, 90)):
        picture = Image.new("RGB", (width, height), colour)
        picture.paste((10, 220, 30), (0, 0, width // 2, height // 2))
        return picture
    return make


def sharpen(model, seed: int = 0):
    """Re-draw the backbone's and projector's matrices with a large std, so that a tiny random model's answer
    depends on its prompt and images (at the default init every masked position predicts the same token)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (model.backbone, model.projector):
            for parameter in (module.parameters() if module is not None else ()):
                if parameter.dim() == 2:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model
