"""Image loading: every bad input gives one clear ImageError; other colour modes are converted."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dvlm.core.errors import ImageError
from dvlm.core.image import Preprocess, load_image


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is text, not pixels")
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(path)


def test_truncated_file(tmp_path):
    data = _png(Image.effect_noise((64, 64), 40).convert("RGB"), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(path)


def test_truncated_file_is_refused_even_when_another_library_made_pillow_tolerant(tmp_path, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what `import lmms_eval` does process-wide
    data = _png(Image.effect_noise((64, 64), 40).convert("RGB"), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")  # a header Pillow gives up on while tolerant
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(broken)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the other library's setting is left as it was


def test_unsupported_object():
    with pytest.raises(ImageError, match="pass a file path"):
        load_image(12345)


def test_decompression_bomb_guard_is_configurable():
    data = _png(Image.new("L", (300, 200)))
    with pytest.raises(ImageError, match="above the limit of 50000"):
        load_image(data, max_pixels=50_000)
    assert load_image(data, max_pixels=60_000).size == (300, 200)
    assert load_image(data, max_pixels=None).size == (300, 200)


def test_guard_above_pillows_own_limit_is_honoured(monkeypatch):
    """Our limit replaces Pillow's global one (which would otherwise refuse the image first)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    image = load_image(_png(Image.new("RGB", (100, 100))), max_pixels=20_000)
    assert image.size == (100, 100) and Image.MAX_IMAGE_PIXELS == 1000


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "CMYK", "1", "YCbCr"])
def test_colour_modes_become_rgb(mode):
    source = Image.new("RGB", (5, 4), (200, 100, 50)).convert(mode)
    fmt = "JPEG" if mode in ("CMYK", "YCbCr") else "PNG"
    image = load_image(_png(source, fmt))
    assert image.mode == "RGB" and image.size == (5, 4)


def test_sixteen_bit_grey_is_rescaled_not_clipped():
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    image = load_image(_png(Image.fromarray(values)))
    assert image.mode == "RGB"
    assert np.asarray(image)[0, :, 0].tolist() == [0, 4, 128, 255]


def test_float_image_is_rescaled():
    image = load_image(Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F"))
    assert np.asarray(image)[0, :, 1].tolist() == [0, 128, 255]


def test_one_pixel_image_is_usable():
    image = load_image(_png(Image.new("RGB", (1, 1), (10, 20, 30))))
    pixels = Preprocess(28, (0.0,) * 3, (1.0,) * 3)([image])
    assert pixels.shape == (1, 3, 28, 28)
    assert np.allclose(pixels[0, :, 13, 13].numpy() * 255, [10, 20, 30], atol=1)


def test_shortest_edge_crop_keeps_the_centre():
    image = Image.new("RGB", (90, 30), (0, 0, 0))
    image.paste((255, 255, 255), (30, 0, 60, 30))  # white centre third
    pixels = Preprocess(30, (0.0,) * 3, (1.0,) * 3, resize_mode="shortest_edge_crop")([image])
    assert pixels.shape == (1, 3, 30, 30) and pixels.mean() > 0.98
