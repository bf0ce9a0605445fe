"""Forward logits against the reference implementations' recorded outputs (tests/fixtures/README.md)."""

import pytest
import torch

import dvlm
from tests.backbones.conftest import FIXTURES, fixture_cases

# the tolerance the fixture README states for float32 logits (about 1e-5 expected from SDPA kernels)
ATOL, RTOL = 1e-4, 1e-5


@pytest.mark.parametrize(
    "folder,kind", [("llada_tiny", "llada_forward"), ("llada_v_tiny", "llada_v_forward")]
)
def test_llada_logits_match_reference(folder, kind):
    model = dvlm.load_pretrained(FIXTURES / folder)
    cases = fixture_cases(folder, kind)
    assert {name.endswith("padded") for name, _ in cases} == {True, False}
    for name, case in cases:
        # the reference masks padded keys and keeps absolute positions 0..T-1 (given explicitly here)
        ids, padding = case["input_ids"], case.get("attention_mask")
        absolute = torch.arange(ids.shape[1]).expand_as(ids)
        logits = model(ids, attention_mask=padding, position_ids=absolute)
        assert logits.shape == case["logits"].shape, name
        torch.testing.assert_close(logits, case["logits"], atol=ATOL, rtol=RTOL, msg=name)
        if padding is not None:  # by default positions count real tokens only: the same real rows (RoPE is relative)
            real = padding.bool()
            torch.testing.assert_close(model(ids, attention_mask=padding)[real], case["logits"][real],
                                       atol=ATOL, rtol=RTOL, msg=name)


def test_dream_logits_match_reference_shifted():
    """Dream's reference logits are raw (position i-1 predicts token i); the backbone returns them aligned."""
    model = dvlm.load_pretrained(FIXTURES / "dream_tiny")
    assert model.backbone.logits_shifted
    cases = fixture_cases("dream_tiny", "dream_forward")
    assert any("attention_mask" in case for _, case in cases)
    for name, case in cases:
        raw = case["logits"]  # [B, T, V]
        aligned = torch.cat([raw[:, :1], raw[:, :-1]], dim=1)
        real = case.get("attention_mask", torch.ones(raw.shape[:2], dtype=torch.long)).bool()
        source_real = torch.cat([real[:, :1], real[:, :-1]], dim=1)  # the row an aligned row comes from
        logits = model(case["input_ids"], attention_mask=case.get("attention_mask"), position_ids=case.get("position_ids"))
        assert logits.shape == raw.shape, name
        # pad query rows are zeroed in the fixture (meaningless); compare rows computed from real tokens
        torch.testing.assert_close(logits[source_real], aligned[source_real], atol=ATOL, rtol=RTOL, msg=name)


def test_the_two_llada_layouts_load_the_same_model():
    olmo = dvlm.load_pretrained(FIXTURES / "llada_tiny")
    llama = dvlm.load_pretrained(FIXTURES / "llada_v_tiny")
    assert olmo.state_dict().keys() == llama.state_dict().keys()
    for key, value in olmo.state_dict().items():
        assert torch.equal(value, llama.state_dict()[key]), key
    # the only difference is where RoPE rounds (fp32 in OLMo, activation dtype in LLaDA-V's Llama copy)
    assert olmo.backbone.params.rope_full_precision and not llama.backbone.params.rope_full_precision
    assert olmo.backbone.params.model_copy(update={"rope_full_precision": False}) == llama.backbone.params
    ids = torch.randint(0, 250, (2, 16), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(olmo(ids), llama(ids), atol=1e-6, rtol=0)


def test_special_tokens_come_from_the_config():
    for folder in ("llada_tiny", "llada_v_tiny", "dream_tiny"):
        tokens = dvlm.load_pretrained(FIXTURES / folder).special_tokens
        assert (tokens.mask_id, tokens.eos_id, tokens.pad_id) == (250, 251, 251), folder
