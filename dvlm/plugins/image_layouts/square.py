"""One-view image layouts.

- ``single``: the image resized by the encoder's own preprocessing (SigLIP squashes, CLIP resizes the
  short side and centre-crops); LLaVA's ``square`` aspect ratio (LaViDa stage 1, the low-res model).
- ``pad``: the image padded to a square with the encoder's mean colour first (LLaVA ``expand2square``;
  LaViDa and LLaDA-V use it for several images in one prompt).

Both give the view's ``g*g`` tokens, optionally pooled (LLaVA ``get_2dPool``) and optionally followed by
one newline token (LLaDA-V's multi-image path).

Shape legend:
    D feature width   g tokens per view side   q side after pooling
"""

from __future__ import annotations

import torch
from PIL import Image

from dvlm.core.image import Preprocess
from dvlm.plugins.image_layouts.geometry import ViewGrid, expand_to_square, pool_maps, pooled_side, token_maps


class SquareView:
    """The ``single`` and ``pad`` layouts (``pad`` letterboxes with the mean colour before resizing)."""

    def __init__(self, params) -> None:
        self.params = params
        self.uses_newline = params.newline == "one_token"

    def views(self, image: Image.Image, preprocess: Preprocess) -> tuple[torch.Tensor, ViewGrid]:
        """RGB image -> pixels ``[1, 3, S, S]``."""
        if self.params.kind == "pad":
            image = expand_to_square(image, preprocess.background)
        return preprocess([image]), ViewGrid(image.size)

    def merge(self, features: torch.Tensor, grid: ViewGrid, newline: torch.Tensor | None) -> torch.Tensor:
        """Projected features ``[1, g*g, D]`` -> image tokens ``[q*q (+1), D]``."""
        maps = pool_maps(token_maps(features), self.params.pool, self.params.pool_stride)  # [1, D, q, q]
        tokens = maps[0].flatten(1).transpose(0, 1)  # [q*q, D]
        if self.uses_newline:
            tokens = torch.cat([tokens, newline.to(tokens.dtype)[None]])
        return tokens

    def num_tokens(self, image_size: tuple[int, int], view_size: int, grid_size: int) -> int:
        q = pooled_side(grid_size, self.params.pool, self.params.pool_stride)
        return q * q + int(self.uses_newline)

    def num_views(self, image_size: tuple[int, int], view_size: int) -> int:
        return 1
