"""Built-in schedules: how many masked tokens a fixed-count sampler commits at each step of a block.

Two families of rules exist in the references, and they are exposed as distinct kinds because they give
different integer counts for the same (masks, steps):

- ``linear``: LLaDA's ``get_num_transfer_tokens`` (also LaViDa's ``schedule=None``): ``M // K`` per step, the
  remainder going one each to the *first* steps.
- ``shift`` / ``cosine`` / ``logit_normal`` / ``linear_floor``: LaViDa's ``get_num_transfer_tokens_sch``
  "floor path": cumulative counts ``floor(M * g(k / K'))`` on a float32 grid, differences clamped to >= 1,
  excess removed cyclically, order reversed. ``linear_floor`` is that path with ``g(u) = u`` (what LaViDa does
  for ``schedule='linear'`` or any unknown name); it differs from ``linear`` for e.g. (M=17, K=5).
- ``dream``: Dream's ``_sample`` rule ``int(n * (1 - s/t))`` over ``linspace(1, eps, K + 1)``, all remaining
  masks at the last step.

Only pydantic models are imported here; the arithmetic lives in ``linear.py``, ``floor.py`` and ``dream.py``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

import dvlm
from dvlm.core.specs import ComponentParams


class LinearScheduleParams(ComponentParams):
    """LLaDA's rule: ``M // K`` each step, one extra for the first ``M % K`` steps."""

    kind: Literal["linear"] = "linear"


class LinearFloorScheduleParams(ComponentParams):
    """LaViDa's floor path with the identity curve (its ``schedule='linear'``)."""

    kind: Literal["linear_floor"] = "linear_floor"


class ShiftScheduleParams(ComponentParams):
    """LaViDa's timestep-shifted schedule ``g(u) = alpha u / (1 + (alpha - 1) u)`` on the floor path."""

    kind: Literal["shift"] = "shift"
    alpha: float = Field(1 / 3, gt=0.0)
    """LaViDa's ``schedule_kwargs['shift']``. alpha < 1 commits many tokens early (1/3 is the paper's best);
    the reference code's default is 3 (the worst setting in its Table 3b), so dvlm defaults to 1/3."""


class CosineScheduleParams(ComponentParams):
    """LaViDa's cosine curve ``g(u) = 1 - (1 + cos(pi u)) / 2`` on the floor path."""

    kind: Literal["cosine"] = "cosine"


class LogitNormalScheduleParams(ComponentParams):
    """LaViDa's logit-normal curve ``g(u) = Phi(logit(u))`` on the floor path."""

    kind: Literal["logit_normal"] = "logit_normal"


class DreamScheduleParams(ComponentParams):
    """Dream's timestep rule: ``int(n * (1 - t_{i+1} / t_i))`` with ``t = linspace(1, eps, K + 1)``."""

    kind: Literal["dream"] = "dream"
    eps: float = Field(1e-3, gt=0.0, lt=1.0)
    """Final timestep of Dream's ``linspace(1, eps, steps + 1)``."""


@dvlm.hookimpl
def dvlm_register_schedules(register):
    register("linear", "dvlm.plugins.schedules.linear:LinearSchedule", LinearScheduleParams)
    register("linear_floor", "dvlm.plugins.schedules.floor:FloorSchedule", LinearFloorScheduleParams)
    register("shift", "dvlm.plugins.schedules.floor:FloorSchedule", ShiftScheduleParams)
    register("cosine", "dvlm.plugins.schedules.floor:FloorSchedule", CosineScheduleParams)
    register("logit_normal", "dvlm.plugins.schedules.floor:FloorSchedule", LogitNormalScheduleParams)
    register("dream", "dvlm.plugins.schedules.dream:DreamSchedule", DreamScheduleParams)
