"""dvlm-plugin-example: registers the ``geometric`` schedule (commit a shrinking share of the masks each step),
the ``leftmost`` commit rule (fill masks left to right; any stock sampler takes it as ``commit_rule``), and a
whole model family: the ``toy_mdm`` backbone and the ``toy-lab`` checkpoint layout its folders use.

Only light imports here: dvlm imports this module while assembling its registry. The components live in
``schedule.py``, ``commit_rule.py``, ``backbone.py`` and ``checkpoint_layout.py`` and are referenced lazily by
strings.
"""

from typing import Literal

from pydantic import Field

import dvlm
from dvlm.core.specs import ComponentParams


class GeometricScheduleParams(ComponentParams):
    kind: Literal["geometric"] = "geometric"
    ratio: float = Field(0.8, gt=0.0, le=1.0)
    """Each step commits ``ratio`` times as many tokens as the step before (1.0 = linear)."""


class ToyBackboneParams(ComponentParams):
    """A small bidirectional transformer (pre-LN attention + GELU MLP, learned positions)."""

    kind: Literal["toy_mdm"] = "toy_mdm"
    width: int = Field(32, ge=2)
    """Model width D."""
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    vocab_size: int = Field(256, ge=2)
    max_length: int = Field(512, ge=1)
    """Learned positions; longer inputs reuse the last one."""
    mask_token_id: int = Field(250, ge=0)
    eos_token_id: int = Field(251, ge=0)
    bos_token_id: int | None = None
    dtype: Literal["float32", "bfloat16"] = "float32"


class ToyLabLayoutParams(ComponentParams):
    """The toy lab's checkpoint folders (``config.json`` with ``model_type: toy_mdm``, tensors ``toy.*``)."""

    kind: Literal["toy-lab"] = "toy-lab"


@dvlm.hookimpl
def dvlm_register_backbones(register):
    register("toy_mdm", "dvlm_plugin_example.backbone:ToyBackbone", ToyBackboneParams)


@dvlm.hookimpl
def dvlm_register_checkpoint_layouts(register):
    register("toy-lab", "dvlm_plugin_example.checkpoint_layout:ToyLabLayout", ToyLabLayoutParams)


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
