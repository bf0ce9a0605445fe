"""Matrix expansion: a base run plus named axes -> the list of cells (cartesian product minus exclusions).

A matrix document::

    base: {...}                     # the run every cell starts from (a nested mapping)
    axes:                           # axis name -> value name -> overrides (dotted path -> value)
      cache:
        none:   {sampler.cache: {kind: none}}
        prefix: {sampler.cache: {kind: prefix}}
      nfe:
        "25%":  {sampler.step_ratio: 0.25}
    exclude:                        # cells to drop: every listed axis must match
      - {cache: none, nfe: "25%"}

Overrides replace the value at the path (a mapping replaces a mapping whole: ``{kind: none}`` does not
inherit fields of the base's other kind). Paths must exist in the base or under a mapping of it,
so a misspelled path is an error naming the axis and value, not a silently ignored key.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any, Mapping

from dvlm.core.errors import SpecError


@dataclass(frozen=True)
class Cell:
    """One point of the matrix: its axis values and the fully overridden run mapping."""

    axes: dict[str, str]
    run: dict[str, Any]

    @property
    def name(self) -> str:
        return ",".join(f"{axis}={value}" for axis, value in self.axes.items()) or "base"


def set_path(tree: dict[str, Any], path: str, value: Any, where: str) -> None:
    """Set ``a.b.c`` in a nested mapping; every parent must already be a mapping."""
    keys = path.split(".")
    node = tree
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if not isinstance(child, dict):
            known = ", ".join(sorted(node)) or "(nothing)"
            raise SpecError(
                f"{where}: path '{path}' does not exist in the base run: '{'.'.join(keys[:depth + 1])}' is not a "
                f"mapping there (keys at that level: {known})"
            )
        node = child
    node[keys[-1]] = copy.deepcopy(value)


def expand_matrix(base: Mapping[str, Any], axes: Mapping[str, Mapping[str, Mapping[str, Any]]],
                  exclude: list[Mapping[str, str]] | None = None, source: str = "<matrix>") -> list[Cell]:
    """Cartesian product of the axes, exclusions removed, overrides applied to a copy of ``base``."""
    exclude = list(exclude or [])
    for axis, values in axes.items():
        if not values:
            raise SpecError(f"{source}: axes.{axis} has no values; give at least one or remove the axis")
    for i, rule in enumerate(exclude):
        for axis, value in rule.items():
            if axis not in axes:
                raise SpecError(f"{source}: exclude[{i}] names axis '{axis}', which is not one of: {', '.join(axes)}")
            if value not in axes[axis]:
                raise SpecError(f"{source}: exclude[{i}]: axis '{axis}' has no value '{value}' "
                                f"(values: {', '.join(map(str, axes[axis]))})")
    cells = []
    for combo in itertools.product(*[list(values) for values in axes.values()]):
        chosen = dict(zip(axes, combo))
        if any(all(chosen[a] == v for a, v in rule.items()) for rule in exclude):
            continue
        run = copy.deepcopy(dict(base))
        for axis, value in chosen.items():
            for path, override in axes[axis][value].items():
                set_path(run, path, override, where=f"{source}: axes.{axis}.{value}")
        cells.append(Cell(chosen, run))
    if not cells:
        raise SpecError(f"{source}: the matrix is empty: every combination of the axes is excluded")
    return cells
