"""dvlm-plugin-example: registers the ``geometric`` schedule (commit a shrinking share of the masks each step).

Only light imports here: dvlm imports this module while assembling its registry. The schedule itself
lives in ``schedule.py`` and is referenced lazily by a string.
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
