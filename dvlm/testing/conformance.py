"""Generic and per-family conformance checks for registered kinds."""

from __future__ import annotations

from typing import Any, Callable

from pydantic import TypeAdapter, ValidationError

from dvlm.core.plugins import get_registry
from dvlm.core.specs import ComponentParams, Family, spec_hash
from dvlm.testing import checkpoints, masking, samplers, vision


def kinds_to_check(distribution: str | None = None, families: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """(family, kind) pairs of the loaded registry, optionally only those shipped by ``distribution``."""
    return [
        (e.family, e.kind)
        for e in get_registry().entries()
        if (distribution is None or e.origin.distribution == distribution)
        and (families is None or e.family in families)
    ]


def parametrize_kinds(distribution: str | None = None, families: tuple[str, ...] | None = None) -> Any:
    """``pytest.mark.parametrize("family,kind", ...)`` over the registered kinds."""
    import pytest

    cases = kinds_to_check(distribution, families)
    return pytest.mark.parametrize("family,kind", cases, ids=[f"{f}:{k}" for f, k in cases])


def check_params_model(family: str, kind: str) -> ComponentParams:
    """The params model is frozen, forbids unknown fields, round-trips, hashes stably and validates
    through the family union exactly like a built-in kind. Returns the test instance."""
    entry = get_registry().get(family, kind)
    params = entry.params.for_tests()
    assert isinstance(params, entry.params), f"{entry.params.__name__}.for_tests() returned {type(params)}"
    assert params.kind == kind
    dumped = params.model_dump(mode="json")
    via_union = TypeAdapter(Family[family]).validate_python(dumped)
    assert type(via_union) is entry.params and via_union == params, "family union does not round-trip the kind"
    assert spec_hash(via_union) == spec_hash(params)
    try:
        params.model_validate({**dumped, "definitely_not_a_field": 1})
    except ValidationError:
        pass
    else:
        raise AssertionError(f"{entry.params.__name__} accepts unknown fields: set extra='forbid'")
    try:
        setattr(params, "kind", kind)
    except ValidationError:
        pass
    else:
        raise AssertionError(f"{entry.params.__name__} is mutable: specs must be frozen")
    schema = TypeAdapter(Family[family]).json_schema()
    assert kind in str(schema), f"kind '{kind}' missing from the {family} JSON schema"
    return params


def _check_schedule(schedule: Any) -> None:
    import torch

    for masks, steps in [(32, 16), (10, 4), (7, 7), (5, 8), (1, 1)]:
        counts = schedule.counts(torch.tensor([masks]), steps)
        assert counts.dtype == torch.int64 and counts.dim() == 2 and counts.shape[0] == 1, counts
        assert counts.shape[1] <= max(steps, masks), f"more steps than asked: {counts.tolist()}"
        assert int(counts.sum()) == masks, f"counts {counts.tolist()} do not sum to {masks} masks"
        assert bool((counts >= 0).all()), counts


def _check_backbone(backbone: Any) -> None:
    import torch

    tokens = backbone.special_tokens
    assert tokens.mask_id < backbone.vocab_size
    ids = torch.randint(0, backbone.vocab_size, (2, 5))
    ids[:, 2] = tokens.mask_id
    logits = backbone(ids)
    logits = getattr(logits, "logits", logits)
    assert logits.shape == (2, 5, backbone.vocab_size), logits.shape
    assert torch.isfinite(logits).all()
    # logits of chosen rows only: hidden states out, the head on gathered rows, equal to the full logits' rows
    rows = backbone(ids, rows=slice(1, 4))
    assert rows.shape == (2, 3, backbone.vocab_size), rows.shape
    torch.testing.assert_close(rows, logits[:, 1:4], rtol=1e-4, atol=1e-4)
    assert backbone(ids, rows=slice(0, 0)).shape == (2, 0, backbone.vocab_size)
    hidden = backbone.hidden_states(ids)
    assert hidden.shape == (2, 5, backbone.hidden_size), hidden.shape
    torch.testing.assert_close(backbone.head(hidden[:, [0, 4]]), logits[:, [0, 4]], rtol=1e-4, atol=1e-4)


#: family -> check run on the object the factory builds from ``for_tests()`` params.
#: Families whose factories need more than the params (e.g. projectors) register their own check.
FAMILY_CHECKS: dict[str, Callable[[Any], None]] = {
    "schedules": _check_schedule,
    "backbones": _check_backbone,
    "vision_encoders": vision.check_vision_encoder,
    "projectors": vision.check_projector,
    "image_layouts": vision.check_image_layout,
    "chat_templates": vision.check_chat_template,
    "samplers": samplers.check_sampler,
    "commit_rules": samplers.check_commit_rule,
    "confidence_measures": samplers.check_confidence_measure,
    "cache_policies": samplers.check_cache_policy,
    "masking_strategies": masking.check_masking_strategy,
    "checkpoint_layouts": checkpoints.check_checkpoint_layout,
}
#: family -> extra factory arguments after the params (a projector is built as ``factory(params, in, out)``).
FACTORY_ARGS: dict[str, tuple[Any, ...]] = {"projectors": vision.PROJECTOR_DIMS}


def check_kind(family: str, kind: str) -> None:
    """Run every applicable conformance check for one registered kind."""
    params = check_params_model(family, kind)
    check = FAMILY_CHECKS.get(family)
    if check is not None:
        check(get_registry().build(family, params, *FACTORY_ARGS.get(family, ())))
