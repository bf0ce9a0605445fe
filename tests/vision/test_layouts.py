"""Image layouts: AnyRes token and view counts against the reference accounting (anyres.json), counting
agrees with merging for any image size, and the one-view layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import dvlm
from dvlm.core.errors import ImageError
from dvlm.core.image import Preprocess
from dvlm.plugins.image_layouts import AnyResMaxParams, AnyResParams, PadParams, SingleParams

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "anyres" / "anyres.json").read_text())
PARAMS = {"lavida": AnyResParams(), "llada_v": AnyResMaxParams(max_views=4, max_grid=6)}
CASES = [(name, case) for name in PARAMS for case in FIXTURE[name]["cases"]]


def _layout(params):
    return dvlm.registry().build("image_layouts", params)


def test_fixture_config_is_the_one_the_params_describe():
    lavida = FIXTURE["lavida"]["config"]
    side = lavida["vision_image_size"]
    assert [[c * side, r * side] for c, r in PARAMS["lavida"].grids] == lavida["image_grid_pinpoints_wh"]
    assert PARAMS["lavida"].pool == lavida["mm_spatial_pool_mode"]
    assert FIXTURE["llada_v"]["config"]["image_aspect_ratio"] == f"anyres_max_{PARAMS['llada_v'].max_views}"


@pytest.mark.parametrize("name,case", CASES, ids=[f"{n}-{c['image_size_wh'][0]}x{c['image_size_wh'][1]}" for n, c in CASES])
def test_anyres_matches_reference_accounting(name, case):
    layout, config = _layout(PARAMS[name]), FIXTURE[name]["config"]
    side, grid_side = config["vision_image_size"], config["patches_per_side"]
    size = tuple(case["image_size_wh"])
    assert layout.num_tokens(size, side, grid_side) == case["num_image_tokens"]
    assert layout.num_views(size, side) == case["num_views"]

    pixels, grid = layout.views(Image.new("RGB", size, (90, 60, 30)), Preprocess(side, (0.5,) * 3, (0.5,) * 3))
    assert pixels.shape == (case["num_views"], 3, side, side)
    assert [grid.cols, grid.rows] == case["crop_grid_cols_rows"]
    features = torch.randn(case["num_views"], grid_side * grid_side, 3)
    newline = torch.full((3,), 7.0)
    tokens = layout.merge(features, grid, newline)
    assert tokens.shape == (case["num_image_tokens"], 3)
    base = case["base_view_tokens"]
    rows, cols = case["grid_rows_after_unpad"], case["grid_cols_after_unpad"]
    assert base + rows * (cols + 1) == case["num_image_tokens"] and rows == case["newline_tokens"]
    # each grid row ends with the newline token, and only there
    grid_tokens = tokens[base:].view(rows, cols + 1, 3)
    assert (grid_tokens[:, -1] == 7.0).all()
    assert not (grid_tokens[:, :-1] == newline).all(-1).any()


def test_anyres_base_view_comes_first_and_is_the_whole_image_squashed():
    layout = _layout(AnyResParams(pool="none"))
    image = Image.new("RGB", (56, 28), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 28, 28))  # left half white
    pixels, grid = layout.views(image, Preprocess(28, (0.0,) * 3, (1.0,) * 3))
    assert (grid.cols, grid.rows) == (2, 1) and pixels.shape[0] == 3
    base = pixels[0, 0]
    assert base[:, :10].mean() > 0.98 and base[:, -10:].mean() < 0.02  # squashed: left white, right black
    assert pixels[1].mean() > 0.98 and pixels[2].mean() < 0.02  # crops row-major: left crop, then right crop


@settings(max_examples=40, deadline=None)
@given(width=st.integers(1, 400), height=st.integers(1, 400), which=st.sampled_from(["anyres", "anyres_max"]))
def test_counting_equals_merging_for_any_size(width, height, which):
    """A tiny geometry (28-px views, 4x4 token maps): the count used for context checks is the merged length."""
    params = AnyResParams() if which == "anyres" else AnyResMaxParams(max_grid=3, max_views=2)
    layout = _layout(params)
    try:
        expected = layout.num_tokens((width, height), 28, 4)
    except ImageError:  # too thin for every grid: views() must refuse it the same way
        with pytest.raises(ImageError, match="too thin"):
            layout.views(Image.new("RGB", (width, height)), Preprocess(28, (0.5,) * 3, (0.5,) * 3))
        return
    pixels, grid = layout.views(Image.new("RGB", (width, height)), Preprocess(28, (0.5,) * 3, (0.5,) * 3))
    assert pixels.shape[0] == layout.num_views((width, height), 28)
    assert layout.merge(torch.randn(pixels.shape[0], 16, 2), grid, torch.zeros(2)).shape == (expected, 2)


@pytest.mark.parametrize("pool,expected", [("none", 16), ("bilinear", 4), ("average", 4), ("max", 4)])
def test_single_view_pooling(pool, expected):
    layout = _layout(SingleParams(pool=pool))
    pixels, grid = layout.views(Image.new("RGB", (40, 20)), Preprocess(28, (0.5,) * 3, (0.5,) * 3))
    assert pixels.shape == (1, 3, 28, 28)
    assert layout.merge(torch.randn(1, 16, 5), grid, None).shape == (expected, 5)
    assert layout.num_tokens((40, 20), 28, 4) == expected


def test_bilinear_pool_rounds_up_like_the_reference():
    """LaViDa: 27x27 -> 14x14 with bilinear (average pooling would give 13x13)."""
    assert _layout(SingleParams(pool="bilinear")).num_tokens((384, 384), 384, 27) == 196
    assert _layout(SingleParams(pool="average")).num_tokens((384, 384), 384, 27) == 169


def test_pad_letterboxes_with_the_mean_colour_and_can_end_with_a_newline():
    layout = _layout(PadParams(newline="one_token"))
    image = Image.new("RGB", (28, 14), (255, 255, 255))
    pixels, grid = layout.views(image, Preprocess(28, (0.5, 0.25, 0.0), (1.0,) * 3))
    top_row = pixels[0, :, 0, 14] * 255 + torch.tensor([0.5, 0.25, 0.0]) * 255  # un-normalise
    assert torch.allclose(top_row, torch.tensor([127.0, 63.0, 0.0]), atol=1.0)  # LLaVA: int(mean * 255)
    assert pixels[0, :, 14, 14].mean() * 255 + 255 * 0.25 > 200  # the image itself in the middle
    tokens = layout.merge(torch.randn(1, 16, 5), grid, torch.full((5,), 3.0))
    assert tokens.shape == (17, 5) and (tokens[-1] == 3.0).all()
    assert layout.num_tokens((28, 14), 28, 4) == 17
