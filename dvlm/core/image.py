"""Images in: loading with clear errors, colour-mode conversion, and the per-encoder pixel preprocessing.

Every image that reaches a vision encoder goes through two steps:

1. ``load_image(source)``: a path, raw bytes or a ``PIL.Image`` -> an 8-bit RGB ``PIL.Image``. A file that
   is missing, corrupt or truncated, an unsupported object, or an image above the pixel limit (the
   decompression-bomb guard) raises ``ImageError`` naming the source and the fix. Other colour modes are
   converted: palette, grey, CMYK, ... with ``convert("RGB")``; 16-bit and 32-bit integer or float grey
   by rescaling their range to 8 bits (``convert`` would clip them); alpha is dropped, as the LLaVA
   reference does with ``convert("RGB")``.
2. ``Preprocess(views)``: each encoder declares how a view becomes pixels (side, mean/std, interpolation,
   resize mode); ``Preprocess.__call__`` applies it to a list of views -> ``[N, 3, S, S]`` float32.

EXIF orientation is not applied (the references do not apply it either).
"""

from __future__ import annotations

import io
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from dvlm.core.errors import ImageError

#: Default decompression-bomb guard: Pillow's own warning threshold (about 89.5 megapixels).
DEFAULT_MAX_PIXELS = 89_478_485

Interpolation = Literal["bicubic", "bilinear", "nearest"]
ResizeMode = Literal["squash", "shortest_edge_crop"]

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
             "nearest": Image.Resampling.NEAREST}

# Pillow's switches are module globals (see ``_strict_pillow``): set under a lock so that concurrent loads never
# see each other's setting.
_open_lock = threading.Lock()


def _describe(source: Any) -> str:
    if isinstance(source, (str, Path)):
        return f"image file '{source}'"
    if isinstance(source, (bytes, bytearray)):
        return f"image bytes ({len(source)} bytes)"
    return f"image {type(source).__name__}"


def _open(source: Any) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{_describe(source)} does not exist (or is not a file); check the path.")
        fp: Any = path
    elif isinstance(source, (bytes, bytearray)):
        fp = io.BytesIO(bytes(source))
    else:
        raise ImageError(
            f"cannot use an object of type {type(source).__name__} as an image; pass a file path, "
            f"the file's bytes or a PIL.Image."
        )
    with _strict_pillow():
        try:
            return Image.open(fp)
        except (UnidentifiedImageError, OSError):
            raise ImageError(
                f"{_describe(source)} is not a readable image (unknown format or corrupt header); "
                f"re-export it as PNG or JPEG."
            ) from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. High-bit-depth grey is rescaled, never clipped."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
        else:
            top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0.0) > 255 else 255.0
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return image.convert("RGB")


def load_image(source: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """A path, bytes or ``PIL.Image`` -> a decoded 8-bit RGB ``PIL.Image``.

    ``max_pixels`` is the decompression-bomb guard: images with more pixels are refused before they are
    decoded (``None`` disables the guard).
    """
    image = _open(source)
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"{_describe(source)} is {width}x{height} = {width * height} pixels, above the limit of "
            f"{max_pixels} (decompression-bomb guard). Downscale the image, or raise the limit "
            f"(max_image_pixels=...) if you trust the file."
        )
    if width < 1 or height < 1:
        raise ImageError(f"{_describe(source)} is empty ({width}x{height}).")
    try:
        with _strict_pillow():
            image.load()
        return _to_rgb(image)
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(
            f"{_describe(source)} could not be decoded ({err}); the file is corrupt or truncated. "
            f"Re-download or re-export it."
        ) from None


@contextmanager
def _strict_pillow() -> Iterator[None]:
    """Pillow's process-wide switches as dvlm needs them while it opens and decodes one image: no bomb check of
    its own (``load_image`` applies the configurable limit) and truncated files refused, even where another
    library set ``LOAD_TRUNCATED_IMAGES`` (lmms-eval does, on import: missing rows would be padded grey)."""
    with _open_lock:
        pixels, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        tolerant, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = pixels, tolerant


@dataclass(frozen=True)
class Preprocess:
    """How a vision encoder wants its views: declared by the encoder, applied by the image layout."""

    image_size: int
    """Side of the square view, in pixels."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: Interpolation = "bicubic"
    resize_mode: ResizeMode = "squash"
    """``squash``: resize to ``S x S`` ignoring the aspect ratio (SigLIP). ``shortest_edge_crop``: resize the
    shortest edge to ``S``, then centre-crop ``S x S`` (CLIP, timm)."""

    @property
    def background(self) -> tuple[int, int, int]:
        """The mean colour as 8-bit RGB (LLaVA's padding colour for ``pad``)."""
        return tuple(int(m * 255) for m in self.mean)  # type: ignore[return-value]

    def resize(self, image: Image.Image) -> Image.Image:
        """One image -> an ``S x S`` view, following ``resize_mode``."""
        size, resample = self.image_size, _RESAMPLE[self.interpolation]
        if image.size == (size, size):
            return image
        if self.resize_mode == "squash":
            return image.resize((size, size), resample=resample)
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = max(size, int(size * long / short))
        new_w, new_h = (size, new_long) if width <= height else (new_long, size)
        image = image.resize((new_w, new_h), resample=resample)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        return image.crop((left, top, left + size, top + size))

    def __call__(self, views: Sequence[Image.Image]) -> torch.Tensor:
        """RGB views -> normalised pixels ``[N, 3, S, S]`` float32."""
        arrays = np.stack([np.asarray(self.resize(view), dtype=np.uint8) for view in views])  # [N, S, S, 3]
        pixels = torch.from_numpy(arrays).permute(0, 3, 1, 2).float()  # [N, 3, S, S]
        mean = torch.tensor(self.mean).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std).view(1, 3, 1, 1) * 255.0
        return (pixels - mean) / std
