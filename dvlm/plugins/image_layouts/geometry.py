"""LLaVA-NeXT AnyRes geometry, shared by the layouts and by their token counting.

The functions follow ``llava/mm_utils.py`` and ``llava_arch.py`` of LaViDa and LLaDA-V (same code in
both): choosing the grid, letterboxing, cutting crops, re-assembling the crops' token maps, removing the
letterbox rows/columns ("unpad") and LLaVA-OneVision's area-capped bilinear downsampling. The counting
path (``count_*``) and the tensor path use the same helpers, so they cannot disagree.

Shape legend:
    N views   D feature width   g tokens per view side   q side after pooling
    rows / cols   crops of the grid   W x H   original image size in pixels
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from dvlm.core.errors import ImageError

Pool = Literal["bilinear", "average", "max", "none"]


@dataclass(frozen=True)
class ViewGrid:
    """What a layout remembers between cutting views and merging their features."""

    image_size: tuple[int, int]
    """The original image (W, H)."""
    cols: int = 0
    """Crops per row of the grid (0: no grid, a single view)."""
    rows: int = 0
    """Rows of crops."""


def select_best_resolution(size: tuple[int, int], candidates: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """LLaVA's rule: maximise the effective (downscaled) resolution, then minimise waste; first wins ties."""
    width, height = size
    best, best_effective, best_waste = None, 0, math.inf
    for cand_w, cand_h in candidates:
        scale = min(cand_w / width, cand_h / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        waste = cand_w * cand_h - effective
        if effective > best_effective or (effective == best_effective and waste < best_waste):
            best, best_effective, best_waste = (cand_w, cand_h), effective, waste
    if best is None:
        raise ImageError(
            f"an image of {width}x{height} is too thin for every AnyRes grid (it would shrink to zero pixels); "
            f"crop or pad it to a less extreme aspect ratio, or use the 'pad' image layout."
        )
    return best


def resize_and_pad(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Aspect-preserving resize into ``target`` (the long side fills it, the other uses ``ceil``), centred on
    a black canvas."""
    width, height = image.size
    target_w, target_h = target
    scale_w, scale_h = target_w / width, target_h / height
    if scale_w < scale_h:
        new_w, new_h = target_w, min(math.ceil(height * scale_w), target_h)
    else:
        new_w, new_h = min(math.ceil(width * scale_h), target_w), target_h
    canvas = Image.new("RGB", (target_w, target_h), (0, 0, 0))
    canvas.paste(image.resize((new_w, new_h)), ((target_w - new_w) // 2, (target_h - new_h) // 2))
    return canvas


def divide(image: Image.Image, side: int) -> list[Image.Image]:
    """Cut into ``side x side`` crops, row-major."""
    width, height = image.size
    return [image.crop((x, y, x + side, y + side)) for y in range(0, height, side) for x in range(0, width, side)]


def expand_to_square(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """LLaVA's ``expand2square``: pad the short side with ``background``, image centred."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def unpad_box(height: int, width: int, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Rows ``[top, bottom)`` and columns ``[left, right)`` of a ``height x width`` token map that hold the
    image rather than the letterbox (LLaVA ``unpad_image``)."""
    orig_w, orig_h = image_size
    if orig_w / orig_h > width / height:
        new_h = int(orig_h * (width / orig_w))
        pad = (height - new_h) // 2
        return pad, height - pad, 0, width
    new_w = int(orig_w * (height / orig_h))
    pad = (width - new_w) // 2
    return 0, height, pad, width - pad


def pooled_side(side: int, pool: Pool, stride: int) -> int:
    """Token-map side after LLaVA's ``get_2dPool``: bilinear rounds up, average/max pooling rounds down."""
    if pool == "none":
        return side
    return math.ceil(side / stride) if pool == "bilinear" else side // stride


def pool_maps(maps: torch.Tensor, pool: Pool, stride: int) -> torch.Tensor:
    """``[N, D, g, g] -> [N, D, q, q]``."""
    if pool == "none":
        return maps
    if pool == "bilinear":
        side = pooled_side(maps.shape[-1], pool, stride)
        return F.interpolate(maps, size=(side, side), mode="bilinear")
    return (F.avg_pool2d if pool == "average" else F.max_pool2d)(maps, stride)


def capped_size(height: int, width: int, max_views: int, unit: int, threshold: float) -> tuple[int, int]:
    """LLaVA-OneVision ``anyres_max_<k>``: when the map holds more than about ``max_views`` views' worth of
    tokens (ratio above ``threshold``), scale it down to that area. Sizes are floored like the reference,
    but never to zero (the reference would fail there)."""
    times = math.sqrt(height * width / (max_views * unit**2))
    if times <= threshold:
        return height, width
    return max(1, int(height // times)), max(1, int(width // times))


def token_maps(features: torch.Tensor) -> torch.Tensor:
    """Flat per-view tokens ``[N, g*g, D]`` -> maps ``[N, D, g, g]``."""
    N, T, D = features.shape
    side = math.isqrt(T)
    if side * side != T:
        raise ValueError(f"a view gave {T} tokens, not a square map; image layouts need square patch grids")
    return features.view(N, side, side, D).permute(0, 3, 1, 2)  # [N, D, g, g]


def tile(maps: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Crop maps ``[rows*cols, D, q, q]`` (row-major) -> one map ``[D, rows*q, cols*q]``."""
    _, D, q, _ = maps.shape
    grid = maps.view(rows, cols, D, q, q).permute(2, 0, 3, 1, 4)  # [D, rows, q, cols, q]
    return grid.reshape(D, rows * q, cols * q)


def with_newlines(grid: torch.Tensor, newline: torch.Tensor) -> torch.Tensor:
    """Map ``[D, h, w]`` + newline ``[D]`` -> tokens ``[h * (w + 1), D]``, a newline closing each row."""
    D, h, _ = grid.shape
    column = newline.to(grid.dtype).view(D, 1, 1).expand(D, h, 1)  # [D, h, 1]
    return torch.cat([grid, column], dim=2).flatten(1).transpose(0, 1)  # [h*(w+1), D]
