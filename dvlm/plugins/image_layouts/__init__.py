"""Built-in image layouts: how an image becomes views, and how the views' projected features become the
token sequence spliced at its ``<image>`` placeholder.

Grids are given in units of the encoder's view side (LaViDa's pixel pinpoints ``(384, 768), ...`` are
``(1, 2), ...`` for a 384-px encoder), so a layout works unchanged with any encoder size.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

import dvlm
from dvlm.core.specs import ComponentParams

Pool = Literal["bilinear", "average", "max", "none"]


class SingleParams(ComponentParams):
    """One view, resized by the encoder's preprocessing (LLaVA ``square``)."""

    kind: Literal["single"] = "single"
    pool: Pool = "none"
    """Pool the view's token map after the projector (LLaVA ``get_2dPool``); ``none`` keeps g*g tokens."""
    pool_stride: int = Field(2, ge=1)
    """Pooling factor: bilinear gives ceil(g/stride) per side, average/max floor(g/stride)."""
    newline: Literal["none", "one_token"] = "none"
    """``one_token``: append the learned newline token after the image (LLaDA-V multi-image)."""


class PadParams(SingleParams):
    """One view of the image padded to a square with the encoder's mean colour (LLaVA ``pad``)."""

    kind: Literal["pad"] = "pad"  # type: ignore[assignment]


class AnyResParams(ComponentParams):
    """LaViDa AnyRes: base view + best grid of crops, pooled, unpadded, a newline per row."""

    kind: Literal["anyres"] = "anyres"
    grids: list[tuple[int, int]] = [(1, 2), (2, 1), (2, 2), (3, 1), (1, 3)]
    """Candidate grids as (columns, rows) of views; the order breaks ties. Default: LaViDa's pinpoints."""
    pool: Pool = "bilinear"
    """Pooling of every view's token map after the projector (LaViDa: bilinear, 27x27 -> 14x14)."""
    pool_stride: int = Field(2, ge=1)
    """Pooling factor."""

    @field_validator("grids")
    @classmethod
    def _grids(cls, grids: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if not grids or any(c < 1 or r < 1 for c, r in grids):
            raise ValueError("grids must be a non-empty list of (columns, rows) with both >= 1")
        return grids


class AnyResMaxParams(ComponentParams):
    """LLaDA-V AnyRes (LLaVA-OneVision ``anyres_max_<max_views>``): grids 1x1..NxN, unpooled, area-capped."""

    kind: Literal["anyres_max"] = "anyres_max"
    max_grid: int = Field(6, ge=1)
    """Grids (columns, rows) range over 1..max_grid each."""
    max_views: int = Field(4, ge=1)
    """The crop map is downsampled to about this many views' worth of tokens (the ``4`` of anyres_max_4)."""
    downsample_threshold: float = Field(1.1, gt=0)
    """Downsample only when sqrt(tokens / (max_views * g*g)) exceeds this ratio."""


@dvlm.hookimpl
def dvlm_register_image_layouts(register):
    register("single", "dvlm.plugins.image_layouts.square:SquareView", SingleParams)
    register("pad", "dvlm.plugins.image_layouts.square:SquareView", PadParams)
    register("anyres", "dvlm.plugins.image_layouts.anyres:AnyRes", AnyResParams)
    register("anyres_max", "dvlm.plugins.image_layouts.anyres:AnyResMax", AnyResMaxParams)
