"""Sampler specs: a preset name, a spec file, a dict or a params object, plus ``key=value`` overrides.

Presets ship in ``dvlm/presets/samplers/<name>.yaml`` (sampler spec documents). Overrides use dotted keys
into the spec (``steps=16``, ``schedule.alpha=0.5``, ``cache=prefix``); values are read as YAML scalars
(``0.5``, ``null``, ``true``, ``[1, 2]``). Every mistake gives one message naming the cause and the fix:
an unknown preset (with the closest name), a key the sampler kind does not have (with its fields), a value
that does not validate (with the path).
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from pydantic import BaseModel

from dvlm.core.errors import SpecError, UnknownKindError

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets" / "samplers"


def preset_names() -> list[str]:
    """Names of the sampler presets shipped with dvlm."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    return PRESET_DIR / f"{name}.yaml"


def _load_named(sampler: str) -> tuple[dict, str]:
    from dvlm.core.specs import read_document

    if sampler in preset_names():
        path = preset_path(sampler)
        return read_document(path), f"preset '{sampler}' ({path})"
    path = Path(sampler)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        if not path.exists():
            raise SpecError(f"sampler spec file {path} does not exist")
        return read_document(path), str(path)
    close = difflib.get_close_matches(sampler, preset_names(), n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise SpecError(
        f"unknown sampler preset '{sampler}'. Presets: {', '.join(preset_names())}.{hint} "
        "Or pass a sampler spec file (.yaml/.json)."
    )


def parse_overrides(overrides: Sequence[str] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``["a.b=1", ...]`` or ``{"a.b": 1}`` -> ``[("a.b", 1), ...]``."""
    if isinstance(overrides, Mapping):
        return list(overrides.items())
    pairs = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {item!r}: expected key=value, e.g. --set steps=16 or --set schedule.alpha=0.5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        pairs.append((key.strip(), value))
    return pairs


def _family_of(field) -> str | None:
    """The registry family of a ``Family[...]`` field (possibly Optional), else None."""
    stack = [field.annotation, *field.metadata]
    while stack:
        item = stack.pop()
        family = getattr(item, "family", None)
        if isinstance(family, str):
            return family
        stack += list(getattr(item, "__metadata__", ())) + list(getattr(item, "__args__", ()))
    return None


def _params_model(family: str, node: Any, where: str):
    from dvlm.core.plugins import get_registry

    kind = node.get("kind") if isinstance(node, dict) else None
    if kind is None:
        raise SpecError(f"{where}: no kind given; add kind: <one of {', '.join(get_registry().kinds(family))}>")
    try:
        return get_registry().get(family, kind).params
    except UnknownKindError as err:
        raise SpecError(f"{where}: {err}") from None


def apply_override(data: dict, key: str, value: Any, source: str) -> None:
    """Set ``data[k1][k2]... = value`` after checking each key against the params model at that level.

    Setting a component's ``kind`` (``commit_rule.kind=threshold``) replaces the component with that kind's
    defaults (the old kind's fields would not validate), and names one the spec left unset."""
    path = key.split(".")
    node, model, what = data, _params_model("samplers", data, source), f"sampler kind '{data.get('kind')}'"
    for depth, name in enumerate(path):
        fields = model.model_fields
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise SpecError(
                f"--set {key}: {what} has no field '{name}'. Its fields: {', '.join(fields)}.{hint}"
            )
        if depth == len(path) - 1:
            node[name] = value
            return
        family = _family_of(fields[name])
        if family is None:
            raise SpecError(f"--set {key}: '{name}' is a plain value, it has no sub-fields")
        if path[depth + 1:] == ["kind"]:
            node[name] = {"kind": value}
            _params_model(family, node[name], f"--set {key}")  # an unknown kind is named here
            return
        child = node.get(name)
        if isinstance(child, str) or child is None:
            child = {"kind": child} if isinstance(child, str) else {}
            node[name] = child
        model = _params_model(family, child, f"--set {key}")
        node, what = child, f"{name} kind '{child.get('kind')}'"


def resolve_sampler(sampler: Any, overrides: Sequence[str] | Mapping[str, Any] = ()) -> Any:
    """Preset name | file path | dict | params object (+ overrides) -> validated sampler params."""
    from dvlm.core.specs import parse_spec

    pairs = parse_overrides(overrides)
    if isinstance(sampler, BaseModel):
        if not pairs:
            return sampler
        data, source = sampler.model_dump(mode="json"), f"sampler '{sampler.kind}'"
    elif isinstance(sampler, Mapping):
        data, source = copy.deepcopy(dict(sampler)), "sampler dict"
    elif isinstance(sampler, (str, Path)):
        data, source = _load_named(str(sampler))
    else:
        raise SpecError(f"sampler must be a preset name, a spec file, a dict or sampler params, "
                        f"got {type(sampler).__name__}")
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a sampler spec must be a mapping")
    data = dict(data)
    data.pop("spec", None)
    for key, value in pairs:
        apply_override(data, key, value, source)
    return parse_spec(data, source=source, as_type="sampler")
