"""Conformance of every registered kind of the multimodal families (the kit plugin authors run), and the
projectors' published parameter names."""

from __future__ import annotations

import torch

import dvlm
from dvlm.testing import check_kind, parametrize_kinds
from dvlm.plugins.projectors import LinearParams, Mlp2xGeluParams


@parametrize_kinds(families=("vision_encoders", "projectors", "image_layouts", "chat_templates"))
def test_registered_kind_conforms(family, kind):
    check_kind(family, kind)


def test_mlp2x_gelu_has_llava_keys_and_exact_gelu():
    projector = dvlm.registry().build("projectors", Mlp2xGeluParams(), 6, 10)
    assert {k: tuple(v.shape) for k, v in projector.state_dict().items()} == {
        "0.weight": (10, 6), "0.bias": (10,), "2.weight": (10, 10), "2.bias": (10,)}
    x = torch.randn(4, 6)
    hidden = torch.nn.functional.gelu(x @ projector[0].weight.T + projector[0].bias)  # exact (erf) GELU
    torch.testing.assert_close(projector(x), hidden @ projector[2].weight.T + projector[2].bias)


def test_linear_projector_keys():
    projector = dvlm.registry().build("projectors", LinearParams(), 6, 10)
    assert {k: tuple(v.shape) for k, v in projector.state_dict().items()} == {"weight": (10, 6), "bias": (10,)}
