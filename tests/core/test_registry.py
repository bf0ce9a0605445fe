from typing import Literal

import pytest

from dvlm.core.errors import RegistryError, UnknownKindError
from dvlm.core.registry import FAMILIES, Entry, Origin, Registry
from dvlm.core.specs import ComponentParams


class P(ComponentParams):
    kind: Literal["linear"] = "linear"


class Q(ComponentParams):
    kind: Literal["cosine"] = "cosine"


A = Origin("alpha", "dist-a", "1.0")
B = Origin("beta", "dist-b", "2.3")


def test_families_come_from_the_hookspecs():
    assert {"vision_encoders", "projectors", "backbones", "masking_strategies", "samplers", "schedules",
            "cache_policies"} <= set(FAMILIES)


def test_collision_names_both_origins():
    reg = Registry()
    reg.add(Entry("schedules", "linear", "x:y", P, A))
    with pytest.raises(RegistryError) as err:
        reg.add(Entry("schedules", "linear", "x:z", P, B))
    assert "dist-a 1.0" in str(err.value) and "dist-b 2.3" in str(err.value)


def test_an_alias_cannot_shadow_a_kind():
    reg = Registry()
    reg.add(Entry("schedules", "linear", "x:y", P, A))
    with pytest.raises(RegistryError, match="registered twice"):
        reg.add(Entry("schedules", "cosine", "x:y", Q, B, aliases=("linear",)))


def test_unknown_kind_lists_kinds_and_suggests_the_closest():
    reg = Registry()
    reg.add(Entry("schedules", "linear", "x:y", P, A))
    reg.add(Entry("schedules", "cosine", "x:y", Q, A))
    with pytest.raises(UnknownKindError) as err:
        reg.get("schedules", "cosin")
    message = str(err.value)
    assert "cosine, linear" in message and "Did you mean 'cosine'?" in message


def test_unknown_family_is_reported():
    with pytest.raises(UnknownKindError, match="unknown family 'schedulez'.*Did you mean 'schedules'"):
        Registry().get("schedulez", "linear")


def test_alias_resolves_to_the_kind():
    reg = Registry()
    reg.add(Entry("schedules", "linear", "x:y", P, A, aliases=("lin",)))
    assert reg.get("schedules", "lin").kind == "linear"


def test_params_kind_must_match_the_registered_kind():
    with pytest.raises(RegistryError, match="Literal\\['cosine'\\]"):
        Registry().add(Entry("schedules", "cosine", "x:y", P, A))


def test_params_must_be_component_params():
    with pytest.raises(RegistryError, match="ComponentParams"):
        Registry().add(Entry("schedules", "linear", "x:y", dict, A))


def test_lazy_factory_is_resolved_on_first_use():
    entry = Entry("schedules", "linear", "json:dumps", P, A)
    import json

    assert entry._factory is None
    assert entry.factory is json.dumps
