"""AnyRes image layouts: a base view of the whole image plus a grid of crops at a higher resolution.

- ``anyres`` (LaViDa): grids from a short list of pinpoints; every view's projected map is pooled
  (bilinear 27x27 -> 14x14 by default), the crops' maps are tiled, letterbox rows/columns removed, and a
  learned newline token closes each row. Tokens: base (q*q) + rows' tokens.
- ``anyres_max`` (LLaDA-V, LLaVA-OneVision ``anyres_max_4``): grids up to 6x6; no pooling; the tiled,
  unpadded map is bilinearly downsampled when it exceeds about ``max_views`` views' worth of tokens.

Views are ``[base] + crops``: the base view is the whole image squashed to the view size (LLaVA keeps
this known squash "for consistency"), the crops come from the image letterboxed into the chosen grid.

Shape legend:
    N views (1 + rows*cols)   D feature width   g tokens per view side   q side after pooling
"""

from __future__ import annotations

import torch
from PIL import Image

from dvlm.core.image import Preprocess
from dvlm.plugins.image_layouts.geometry import (
    ViewGrid,
    capped_size,
    divide,
    pool_maps,
    pooled_side,
    resize_and_pad,
    select_best_resolution,
    tile,
    token_maps,
    unpad_box,
    with_newlines,
)


def _views(image: Image.Image, preprocess: Preprocess, grids: list[tuple[int, int]]) -> tuple[torch.Tensor, ViewGrid]:
    side = preprocess.image_size
    best_w, best_h = select_best_resolution(image.size, [(c * side, r * side) for c, r in grids])
    crops = divide(resize_and_pad(image, (best_w, best_h)), side)
    base = image.resize((side, side))
    return preprocess([base, *crops]), ViewGrid(image.size, cols=best_w // side, rows=best_h // side)


def _best_grid(size: tuple[int, int], view_size: int, grids: list[tuple[int, int]]) -> tuple[int, int]:
    best_w, best_h = select_best_resolution(size, [(c * view_size, r * view_size) for c, r in grids])
    return best_w // view_size, best_h // view_size


class AnyRes:
    """LaViDa AnyRes: pooled base view first, then the unpadded crop grid with a newline per row."""

    uses_newline = True

    def __init__(self, params) -> None:
        self.params = params
        self.grids = [tuple(g) for g in params.grids]

    def views(self, image: Image.Image, preprocess: Preprocess) -> tuple[torch.Tensor, ViewGrid]:
        """RGB image -> pixels ``[1 + rows*cols, 3, S, S]`` and the grid to merge with."""
        return _views(image, preprocess, self.grids)

    def merge(self, features: torch.Tensor, grid: ViewGrid, newline: torch.Tensor | None) -> torch.Tensor:
        """Projected features ``[N, g*g, D]`` -> image tokens ``[T, D]``."""
        p = self.params
        maps = pool_maps(token_maps(features), p.pool, p.pool_stride)  # [N, D, q, q]
        base = maps[0].flatten(1).transpose(0, 1)  # [q*q, D]
        tiled = tile(maps[1:], grid.rows, grid.cols)  # [D, rows*q, cols*q]
        top, bottom, left, right = unpad_box(tiled.shape[1], tiled.shape[2], grid.image_size)
        return torch.cat([base, with_newlines(tiled[:, top:bottom, left:right], newline)])

    def num_tokens(self, image_size: tuple[int, int], view_size: int, grid_size: int) -> int:
        """Tokens one image of ``image_size`` (W, H) becomes, without running anything."""
        cols, rows = _best_grid(image_size, view_size, self.grids)
        q = pooled_side(grid_size, self.params.pool, self.params.pool_stride)
        top, bottom, left, right = unpad_box(rows * q, cols * q, image_size)
        return q * q + (bottom - top) * (right - left + 1)

    def num_views(self, image_size: tuple[int, int], view_size: int) -> int:
        cols, rows = _best_grid(image_size, view_size, self.grids)
        return 1 + cols * rows


class AnyResMax:
    """LLaDA-V AnyRes: unpooled base view first, then the unpadded, area-capped grid with newlines."""

    uses_newline = True

    def __init__(self, params) -> None:
        self.params = params
        n = params.max_grid
        # LLaVA's "(1x1),...,(nxn)": (width units, height units), width varying slowest; order breaks ties.
        self.grids = [(cols, rows) for cols in range(1, n + 1) for rows in range(1, n + 1)]

    def views(self, image: Image.Image, preprocess: Preprocess) -> tuple[torch.Tensor, ViewGrid]:
        """RGB image -> pixels ``[1 + rows*cols, 3, S, S]`` and the grid to merge with."""
        return _views(image, preprocess, self.grids)

    def merge(self, features: torch.Tensor, grid: ViewGrid, newline: torch.Tensor | None) -> torch.Tensor:
        """Projected features ``[N, g*g, D]`` -> image tokens ``[T, D]``."""
        p = self.params
        maps = token_maps(features)  # [N, D, g, g]
        base = maps[0].flatten(1).transpose(0, 1)  # [g*g, D]
        tiled = tile(maps[1:], grid.rows, grid.cols)  # [D, rows*g, cols*g]
        top, bottom, left, right = unpad_box(tiled.shape[1], tiled.shape[2], grid.image_size)
        tiled = tiled[:, top:bottom, left:right]  # [D, h, w]
        height, width = capped_size(tiled.shape[1], tiled.shape[2], p.max_views, maps.shape[-1], p.downsample_threshold)
        if (height, width) != tuple(tiled.shape[1:]):
            tiled = torch.nn.functional.interpolate(tiled[None], size=(height, width), mode="bilinear")[0]
        return torch.cat([base, with_newlines(tiled, newline)])

    def num_tokens(self, image_size: tuple[int, int], view_size: int, grid_size: int) -> int:
        """Tokens one image of ``image_size`` (W, H) becomes, without running anything."""
        cols, rows = _best_grid(image_size, view_size, self.grids)
        top, bottom, left, right = unpad_box(rows * grid_size, cols * grid_size, image_size)
        height, width = capped_size(bottom - top, right - left, self.params.max_views, grid_size,
                                    self.params.downsample_threshold)
        return grid_size * grid_size + height * (width + 1)

    def num_views(self, image_size: tuple[int, int], view_size: int) -> int:
        cols, rows = _best_grid(image_size, view_size, self.grids)
        return 1 + cols * rows
