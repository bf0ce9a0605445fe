"""A plugin defined inside the test suite (registered at runtime with ``add_plugin``)."""

from typing import Literal

from pydantic import Field

import dvlm
from dvlm.core.specs import ComponentParams, Family, non_semantic


class ToyBackboneParams(ComponentParams):
    kind: Literal["toy"] = "toy"
    width: int = Field(8, ge=1)
    """Model width."""
    schedule: Family["schedules"] | None = None
    """A nested component, to exercise nested unions."""
    device: str = non_semantic("cpu")
    """Where to run: does not change the result."""


class ToyScheduleParams(ComponentParams):
    kind: Literal["toy_even"] = "toy_even"
    steps_hint: int = Field(4, ge=1)


class ToyPlugin:
    @dvlm.hookimpl
    def dvlm_register_backbones(self, register):
        register("toy", "tests.core.toy_plugin:build_toy", ToyBackboneParams, aliases=("toy_alias",))

    @dvlm.hookimpl
    def dvlm_register_schedules(self, register):
        register("toy_even", "tests.core.toy_plugin:build_toy", ToyScheduleParams)


def build_toy(params):
    return params
