"""Vision encoders: the shared contract for every registered kind, and each kind against its own library's
full model loaded from a folder in that library's format (the selected hidden state, no final norm)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import dvlm
from dvlm.core.errors import CheckpointError, SpecError
from dvlm.core.image import Preprocess
from dvlm.plugins.vision.params import ClipParams, Siglip2Params, SiglipParams, TimmParams

TINY = dict(image_size=28, patch_size=14, num_layers=3, num_heads=2)


def _build(params):
    return dvlm.registry().build("vision_encoders", params)


@pytest.mark.parametrize("kind", dvlm.registry().kinds("vision_encoders"))
def test_every_kind_honours_the_contract(kind):
    params = dvlm.registry().get("vision_encoders", kind).params.for_tests()
    encoder = _build(params)
    assert isinstance(encoder.preprocess, Preprocess)
    side, grid = encoder.image_size, encoder.grid_size
    assert encoder.preprocess.image_size == side and grid >= 1
    pixels = torch.randn(3, 3, side, side)
    features = encoder(pixels)
    assert features.shape == (3, grid * grid, encoder.feature_dim)
    assert torch.isfinite(features).all()
    # views are independent: encoding one alone gives its row of the batch
    torch.testing.assert_close(encoder(pixels[1:2])[0], features[1], rtol=1e-4, atol=1e-5)


def test_weights_are_never_silently_random():
    with pytest.raises(ValueError, match="init: random"):
        SiglipParams()
    with pytest.raises(ValueError, match="contradict"):
        SiglipParams(init="random", pretrained="/somewhere")


def _hidden(model, pixels, index, **kwargs):
    return model(pixel_values=pixels, output_hidden_states=True, **kwargs).hidden_states[index]


@pytest.mark.parametrize("select_layer", [-2, -1, 1])
def test_siglip_matches_transformers_hidden_state(tmp_path, select_layer):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    reference = SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                                     num_attention_heads=2, image_size=28, patch_size=14)).eval()
    reference.save_pretrained(tmp_path)
    encoder = _build(SiglipParams(hidden_size=32, intermediate_size=64, pretrained=str(tmp_path),
                                  select_layer=select_layer, dtype="float32", **TINY))
    pixels = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(encoder(pixels), _hidden(reference, pixels, select_layer))
    assert len(encoder.encoder.layers) == (select_layer if select_layer > 0 else 4 + select_layer)


def test_siglip2_naflex_matches_transformers(tmp_path):
    from transformers import Siglip2VisionConfig, Siglip2VisionModel

    torch.manual_seed(0)
    reference = Siglip2VisionModel(Siglip2VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                                       num_attention_heads=2, patch_size=14, num_patches=9)).eval()
    reference.save_pretrained(tmp_path)
    encoder = _build(Siglip2Params(variant="naflex", position_grid=3, hidden_size=32, intermediate_size=64,
                                   pretrained=str(tmp_path), dtype="float32", **TINY))
    pixels = torch.randn(2, 3, 28, 28)
    patches = pixels.reshape(2, 3, 2, 14, 2, 14).permute(0, 2, 4, 3, 5, 1).reshape(2, 4, 14 * 14 * 3)
    with torch.no_grad():
        expected = _hidden(reference, patches, -2, pixel_attention_mask=torch.ones(2, 4, dtype=torch.long),
                           spatial_shapes=torch.tensor([[2, 2], [2, 2]]))
        torch.testing.assert_close(encoder(pixels), expected)


def test_siglip_loads_a_full_siglip_model_folder(tmp_path):
    """A whole SigLIP (text + vision, model_type siglip) folder: only the vision tower is taken."""
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(0)
    config = SiglipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                           image_size=28, patch_size=14),
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=64, max_position_embeddings=16),
    )
    reference = SiglipModel(config).eval()
    reference.save_pretrained(tmp_path)
    encoder = _build(SiglipParams(hidden_size=32, intermediate_size=64, pretrained=str(tmp_path), dtype="float32",
                                  **TINY))
    pixels = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        expected = reference.vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
        torch.testing.assert_close(encoder(pixels), expected)


def test_pretrained_architecture_mismatch_names_the_fields(tmp_path):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                         num_attention_heads=2, image_size=28, patch_size=14)).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="hidden_size: spec 64 vs weights 32"):
        _build(SiglipParams(hidden_size=64, intermediate_size=64, pretrained=str(tmp_path), dtype="float32", **TINY))
    with pytest.raises(CheckpointError, match="no such file or folder"):
        _build(SiglipParams(pretrained=str(tmp_path / "missing")))


def test_clip_open_clip_matches_the_full_tower(tmp_path):
    from open_clip.transformer import QuickGELU, VisionTransformer

    torch.manual_seed(0)
    full = VisionTransformer(image_size=28, patch_size=14, width=32, layers=3, heads=2, mlp_ratio=4.0,
                             act_layer=QuickGELU, output_dim=16).eval()
    save_file({f"visual.{k}": v.contiguous() for k, v in full.state_dict().items()}, tmp_path / "clip.safetensors")
    encoder = _build(ClipParams(width=32, pretrained=str(tmp_path / "clip.safetensors"), dtype="float32", **TINY))
    pixels = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        (expected,) = full.forward_intermediates(pixels, indices=[1], intermediates_only=True,
                                                 output_fmt="NLC")["image_intermediates"]
        torch.testing.assert_close(encoder(pixels), expected)


def test_clip_open_clip_hub_folder_is_checked_against_its_config(tmp_path):
    from open_clip.transformer import VisionTransformer

    full = VisionTransformer(image_size=28, patch_size=14, width=32, layers=3, heads=2, mlp_ratio=4.0, output_dim=16)
    save_file({f"visual.{k}": v.contiguous() for k, v in full.state_dict().items()},
              tmp_path / "open_clip_model.safetensors")
    cfg = {"model_cfg": {"vision_cfg": {"image_size": 28, "patch_size": 14, "width": 32, "layers": 3,
                                        "head_width": 16}}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(cfg))
    encoder = _build(ClipParams(width=32, activation="gelu", pretrained=str(tmp_path), dtype="float32", **TINY))
    assert encoder(torch.randn(1, 3, 28, 28)).shape == (1, 4, 32)
    with pytest.raises(CheckpointError, match="num_layers: spec 4 vs weights 3"):
        _build(ClipParams(width=32, pretrained=str(tmp_path), dtype="float32", **{**TINY, "num_layers": 4}))


def test_clip_transformers_matches_hidden_state_without_class_token(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    reference = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=128, num_hidden_layers=3,
                                                 num_attention_heads=2, image_size=28, patch_size=14,
                                                 hidden_act="quick_gelu")).eval()
    reference.save_pretrained(tmp_path)
    encoder = _build(ClipParams(source="transformers", width=32, pretrained=str(tmp_path), dtype="float32", **TINY))
    pixels = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(encoder(pixels), _hidden(reference, pixels, -2)[:, 1:])


def test_timm_matches_forward_intermediates_of_the_full_model(tmp_path):
    import timm

    args = {"img_size": 28, "patch_size": 14, "embed_dim": 32, "depth": 3, "num_heads": 2}
    torch.manual_seed(0)
    full = timm.create_model("vit_tiny_patch16_224", **args).eval()
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "vit_tiny_patch16_224",
                                                      "pretrained_cfg": {"mean": [0.1, 0.2, 0.3]}}))
    encoder = _build(TimmParams(model_name="vit_tiny_patch16_224", model_args=args, pretrained=str(tmp_path),
                                dtype="float32"))
    assert encoder.preprocess.mean == (0.1, 0.2, 0.3)
    pixels = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        (expected,) = full.forward_intermediates(pixels, indices=[1], norm=False, output_fmt="NLC",
                                                 intermediates_only=True)
        torch.testing.assert_close(encoder(pixels), expected)
    with pytest.raises(CheckpointError, match="set model_name to match"):
        _build(TimmParams(model_name="vit_small_patch16_224", model_args=args, pretrained=str(tmp_path)))


def test_timm_unknown_model_is_a_spec_error():
    with pytest.raises(SpecError, match="timm"):
        _build(TimmParams(model_name="vit_does_not_exist", init="random"))
