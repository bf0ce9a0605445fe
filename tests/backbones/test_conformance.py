"""Every registered backbone kind builds from ``for_tests()`` and honours the Backbone contract."""

import subprocess
import sys

import pytest
import torch

import dvlm
from dvlm.core.interfaces import Backbone, KVCache, SpecialTokens
from dvlm.core.rope import apply_rope, padded_positions, rope_cos_sin
from dvlm.testing import check_kind, parametrize_kinds


@parametrize_kinds(families=("backbones",))
def test_backbone_kind_conforms(family, kind):
    check_kind(family, kind)
    registry = dvlm.registry()
    params = registry.get(family, kind).params.for_tests()
    model = registry.build(family, params)
    assert isinstance(model, Backbone) and isinstance(model.special_tokens, SpecialTokens)
    assert isinstance(model.logits_shifted, bool) and model.num_layers >= 1
    ids = torch.randint(0, model.vocab_size, (3, 7))
    with torch.no_grad():
        logits = model(ids)
        assert logits.shape == (3, 7, model.vocab_size) and logits.dtype == model.dtype
        assert model.embed(ids).shape == (3, 7, model.hidden_size)
        cache = model.new_cache(3, 16)
        assert isinstance(cache, KVCache) and cache.max_length == 16
        torch.testing.assert_close(model(ids, cache=cache), logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_builds_directly_in_the_spec_dtype(kind):
    registry = dvlm.registry()
    params = registry.get("backbones", kind).params.for_tests().model_copy(update={"dtype": "bfloat16"})
    model = registry.build("backbones", params)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert torch.get_default_dtype() == torch.float32  # restored after the build
    ids = torch.randint(0, model.vocab_size, (1, 5))
    assert model(ids).dtype == torch.bfloat16


def test_forward_argument_errors():
    model = dvlm.registry().build("backbones", dvlm.registry().get("backbones", "llada").params.for_tests())
    ids = torch.randint(0, model.vocab_size, (2, 5))
    with pytest.raises(ValueError, match="exactly one of input_ids"):
        model(ids, inputs_embeds=model.embed(ids))
    with pytest.raises(ValueError, match="position_ids must be"):
        model(ids, position_ids=torch.arange(4)[None])
    with pytest.raises(ValueError, match="covers 3 keys"):
        model(ids, attention_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="attend_end needs a cache"):
        model(ids, attend_end=9)


def test_params_reject_inconsistent_shapes():
    params = dvlm.registry().get("backbones", "llada").params
    with pytest.raises(ValueError, match="not divisible"):
        params.for_tests().model_validate({**params.for_tests().model_dump(), "n_heads": 5})
    with pytest.raises(ValueError, match="mask_token_id=300 is outside the vocabulary"):
        params.for_tests().model_validate({**params.for_tests().model_dump(), "mask_token_id": 300})


def test_rope_precision_variants_agree_in_fp32_and_differ_in_bf16():
    positions = padded_positions(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]))
    assert positions.tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    cos, sin = rope_cos_sin(torch.arange(300)[None] * 7, 16, 5e5)
    x = torch.randn(1, 2, 300, 16)
    assert torch.equal(apply_rope(x, cos, sin, True), apply_rope(x, cos, sin, False))
    xb = x.bfloat16()
    assert not torch.equal(apply_rope(xb, cos, sin, True), apply_rope(xb, cos, sin, False))
    # a rotation keeps norms
    torch.testing.assert_close(apply_rope(x, cos, sin, True).norm(dim=-1), x.norm(dim=-1))


def test_registering_backbones_imports_no_model_code():
    code = (
        "import sys, dvlm; dvlm.registry().get('backbones', 'llada');"
        "heavy = ('dvlm.plugins.backbones.llada', 'dvlm.plugins.backbones.dream', 'torch');"
        "print(any(m.startswith(heavy) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
