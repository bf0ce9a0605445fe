"""dvlm-plugin-example: registers the ``geometric`` schedule (commit a shrinking share of the masks each step)
and the ``leftmost`` commit rule (fill masks left to right; any stock sampler takes it as ``commit_rule``).

Only light imports here: dvlm imports this module while assembling its registry. The components themselves
live in ``schedule.py`` and ``commit_rule.py`` and are referenced lazily by a string.
"""

from typing import Literal

from pydantic import Field

import dvlm
from dvlm.core.specs import ComponentParams


class GeometricScheduleParams(ComponentParams):
    kind: Literal["geometric"] = "geometric"
    ratio: float = Field(0.8, gt=0.0, le=1.0)
    """Each step commits ``ratio`` times as many tokens as the step before (1.0 = linear)."""


@dvlm.hookimpl
def dvlm_register_schedules(register):
    register("geometric", "dvlm_plugin_example.schedule:GeometricSchedule", GeometricScheduleParams, aliases=("geo",))


class LeftmostRuleParams(ComponentParams):
    kind: Literal["leftmost"] = "leftmost"
    per_step: int = Field(1, ge=1)
    """Positions committed per step under a sampler without a schedule (``parallel``)."""


@dvlm.hookimpl
def dvlm_register_commit_rules(register):
    register("leftmost", "dvlm_plugin_example.commit_rule:Leftmost", LeftmostRuleParams)
