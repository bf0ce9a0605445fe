"""Params models of the built-in vision encoders (light: pydantic only, no torch).

Every encoder either loads local pretrained weights (``pretrained: <path>``, in the format of the
library that implements it) or is built from its architecture fields with random weights, and only when
the spec says so (``init: random``): a missing path is an error, never a silent random model. The
architecture fields always describe the network; pretrained weights must fit them (a mismatch is an
error that lists the differing fields).

``select_layer`` follows LLaVA's ``mm_vision_select_layer``: the index into the list of hidden states
(embeddings, layer 1, ..., layer L), so ``-2`` is the output of layer L-1. Layers after the selected
one are not built at all, and no post-layernorm or pooling head is applied: the LaViDa / LLaDA-V choice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dvlm.core.specs import ComponentParams, non_semantic

DType = Literal["float32", "bfloat16", "float16"]


class EncoderParams(ComponentParams):
    """Fields every built-in encoder shares: where the weights come from, which layer, which dtype."""

    kind: str
    pretrained: str | None = non_semantic(None)
    """Local weights in the implementing library's own format (a folder or a ``.safetensors`` file)."""
    init: Literal["pretrained", "random"] = "pretrained"
    """``pretrained``: load ``pretrained`` (required). ``random``: random init from the architecture fields."""
    select_layer: int = -2
    """Hidden state to return (LLaVA ``mm_vision_select_layer``): -1 last layer, -2 the one before, k>0 layer k."""
    dtype: DType = "bfloat16"
    """Weight and activation dtype."""

    @model_validator(mode="after")
    def _weights_source(self) -> "EncoderParams":
        if self.init == "pretrained" and self.pretrained is None:
            raise ValueError(
                f"vision encoder '{self.kind}': no weights given. Set `pretrained: /path/to/weights`, or "
                f"`init: random` to build it with random weights on purpose."
            )
        if self.init == "random" and self.pretrained is not None:
            raise ValueError(
                f"vision encoder '{self.kind}': `init: random` and `pretrained: {self.pretrained}` contradict "
                f"each other; remove one."
            )
        if self.select_layer == 0:
            raise ValueError("select_layer 0 would return the patch embeddings; use -1, -2, ... or 1, 2, ...")
        return self

    def layers_to_run(self, num_layers: int) -> int:
        """How many transformer layers produce the selected hidden state."""
        run = self.select_layer if self.select_layer > 0 else num_layers + 1 + self.select_layer
        if not 1 <= run <= num_layers:
            raise ValueError(f"select_layer {self.select_layer} is outside a {num_layers}-layer encoder")
        return run


class SiglipParams(EncoderParams):
    """SigLIP on transformers' ``SiglipVisionModel``. Defaults: google/siglip-so400m-patch14-384 (LaViDa)."""

    kind: Literal["siglip"] = "siglip"
    image_size: int = Field(384, ge=1)
    """Side of a square view in pixels."""
    patch_size: int = Field(14, ge=1)
    """Patch side; a view gives ``(image_size // patch_size)**2`` tokens."""
    hidden_size: int = Field(1152, ge=1)
    """Feature width."""
    intermediate_size: int = Field(4304, ge=1)
    """MLP width."""
    num_layers: int = Field(27, ge=1)
    """Layers of the full published encoder (before dropping those after ``select_layer``)."""
    num_heads: int = Field(16, ge=1)
    """Attention heads."""
    layer_norm_eps: float = Field(1e-6, gt=0)
    """LayerNorm epsilon."""

    @model_validator(mode="after")
    def _shapes(self) -> "SiglipParams":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.image_size < self.patch_size:
            raise ValueError(f"image_size {self.image_size} is smaller than patch_size {self.patch_size}")
        self.layers_to_run(self.num_layers)
        return self

    @classmethod
    def for_tests(cls) -> "SiglipParams":
        return cls(image_size=28, patch_size=14, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                   init="random", dtype="float32")


class Siglip2Params(SiglipParams):
    """SigLIP 2. ``fixres`` (default; LLaDA-V's google/siglip2-so400m-patch14-384) has SigLIP's architecture
    and weight names; ``naflex`` uses transformers' ``Siglip2VisionModel`` (patchified input, position
    embeddings resized to each view's patch grid)."""

    kind: Literal["siglip2"] = "siglip2"  # type: ignore[assignment]
    variant: Literal["fixres", "naflex"] = "fixres"
    """Which SigLIP 2 architecture the weights use."""
    position_grid: int = Field(16, ge=1)
    """``naflex`` only: side of the learned position-embedding grid (``num_patches = position_grid**2``)."""

    @classmethod
    def for_tests(cls) -> "Siglip2Params":
        return cls(image_size=28, patch_size=14, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                   init="random", dtype="float32")


class ClipParams(EncoderParams):
    """CLIP ViT: open_clip's ``VisionTransformer`` (default) or transformers' ``CLIPVisionModel``, patch
    tokens only (the class token is dropped). Defaults: OpenAI ViT-L/14-336."""

    kind: Literal["clip"] = "clip"
    source: Literal["open_clip", "transformers"] = "open_clip"
    """Implementation, and so the weight format ``pretrained`` must be in."""
    image_size: int = Field(336, ge=1)
    patch_size: int = Field(14, ge=1)
    width: int = Field(1024, ge=1)
    """Feature width."""
    num_layers: int = Field(24, ge=1)
    num_heads: int = Field(16, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)
    activation: Literal["quick_gelu", "gelu"] = "quick_gelu"
    """OpenAI weights use QuickGELU; LAION-trained open_clip models use GELU."""
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    """Pixel mean of the training data (OpenAI CLIP)."""
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    """Pixel std of the training data (OpenAI CLIP)."""

    @model_validator(mode="after")
    def _shapes(self) -> "ClipParams":
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        self.layers_to_run(self.num_layers)
        return self

    @classmethod
    def for_tests(cls) -> "ClipParams":
        return cls(image_size=28, patch_size=14, width=32, num_layers=2, num_heads=2, init="random", dtype="float32")


class TimmParams(EncoderParams):
    """Any timm ViT through ``forward_intermediates`` (prefix tokens dropped). Preprocessing comes from
    the model's timm data config. Default: timm's SigLIP so400m/14-384."""

    kind: Literal["timm"] = "timm"
    model_name: str = "vit_so400m_patch14_siglip_384"
    """A timm model name (``timm.list_models()``); it must support ``forward_intermediates``."""
    model_args: dict[str, int | float | str | bool] = {}
    """Keyword arguments for ``timm.create_model`` (e.g. ``img_size``, ``embed_dim``, ``depth``)."""

    @classmethod
    def for_tests(cls) -> "TimmParams":
        return cls(model_name="vit_tiny_patch16_224", init="random", dtype="float32",
                   model_args={"img_size": 28, "patch_size": 14, "embed_dim": 32, "depth": 2, "num_heads": 2})
