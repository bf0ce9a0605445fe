"""Plugin discovery and isolation, with plugins defined in the test (llm/datasette style)."""

import types
from typing import Literal

import pytest

import dvlm
from dvlm.core.plugins import Candidate, assemble_registry, builtin_plugin_modules
from dvlm.core.registry import Origin
from dvlm.core.specs import ComponentParams


class WidgetParams(ComponentParams):
    kind: Literal["widget"] = "widget"


class GadgetParams(ComponentParams):
    kind: Literal["gadget"] = "gadget"


def plugin_module(name, hook=None):
    module = types.ModuleType(name)
    if hook is not None:
        module.dvlm_register_schedules = dvlm.hookimpl(hook)
    return module


def candidate(name, module=None, *, dist=None, load=None, builtin=False):
    origin = Origin(name, dist or f"dist-{name}", "1.2.3")
    return Candidate(name, origin, load or (lambda: module), builtin)


def registers(kind, params):
    def hook(register):
        register(kind, "json:dumps", params)
    return hook


def test_discovered_plugin_kinds_carry_their_origin():
    registry = assemble_registry([candidate("good", plugin_module("good", registers("widget", WidgetParams)))])
    entry = registry.get("schedules", "widget")
    assert (entry.origin.plugin, entry.origin.distribution, entry.origin.version) == ("good", "dist-good", "1.2.3")
    assert registry.plugins["good"].distribution == "dist-good"


def test_plugin_that_fails_to_import_is_reported_and_the_others_load():
    def explode():
        raise ImportError("no module named 'missing_dependency'")

    with pytest.warns(UserWarning, match="broken"):
        registry = assemble_registry([
            candidate("broken", load=explode),
            candidate("good", plugin_module("good", registers("widget", WidgetParams))),
        ])
    assert "missing_dependency" in registry.failures["broken"]
    assert registry.kinds("schedules") == ["widget"]


def test_plugin_that_fails_while_registering_leaves_nothing_behind():
    def half_then_raise(register):
        register("gadget", "json:dumps", GadgetParams)
        raise RuntimeError("boom during registration")

    with pytest.warns(UserWarning, match="halfway"):
        registry = assemble_registry([
            candidate("halfway", plugin_module("halfway", half_then_raise)),
            candidate("good", plugin_module("good", registers("widget", WidgetParams))),
        ])
    assert "boom during registration" in registry.failures["halfway"]
    assert registry.kinds("schedules") == ["widget"]


def test_collision_between_plugins_is_reported_with_both_distributions():
    with pytest.warns(UserWarning):
        registry = assemble_registry([
            candidate("first", plugin_module("first", registers("widget", WidgetParams))),
            candidate("second", plugin_module("second", registers("widget", WidgetParams))),
        ])
    assert "dist-first" in registry.failures["second"] and "dist-second" in registry.failures["second"]
    assert registry.get("schedules", "widget").origin.plugin == "first"


def test_allowlist_selects_third_party_plugins_by_name_or_distribution(monkeypatch):
    plugins = [
        candidate("one", plugin_module("one", registers("widget", WidgetParams))),
        candidate("two", plugin_module("two", registers("gadget", GadgetParams)), dist="two-dist"),
    ]
    monkeypatch.setenv("DVLM_PLUGINS", "one")
    assert assemble_registry(plugins).kinds("schedules") == ["widget"]
    monkeypatch.setenv("DVLM_PLUGINS", "two-dist")
    assert assemble_registry(plugins).kinds("schedules") == ["gadget"]
    monkeypatch.setenv("DVLM_PLUGINS", "")
    assert assemble_registry(plugins).kinds("schedules") == []


def test_blocklist_disables_third_party_and_builtin_plugins(monkeypatch):
    plugins = [
        candidate("one", plugin_module("one", registers("widget", WidgetParams))),
        candidate("dvlm.core_kinds", plugin_module("core", registers("gadget", GadgetParams)), builtin=True),
    ]
    monkeypatch.setenv("DVLM_PLUGINS", "")  # an empty allowlist does not switch built-ins off
    assert assemble_registry(plugins).kinds("schedules") == ["gadget"]
    monkeypatch.delenv("DVLM_PLUGINS")
    monkeypatch.setenv("DVLM_DISABLE_PLUGINS", "one, dvlm.core_kinds")
    assert assemble_registry(plugins).kinds("schedules") == []


def test_builtin_plugins_are_the_subpackages_of_dvlm_plugins_and_the_hooks_of_other_packages():
    modules = builtin_plugin_modules()
    assert modules["dvlm.checkpoint_layouts"] == "dvlm.plugins.checkpoint_layouts"
    assert modules["dvlm.train"] == "dvlm.train.hooks" and modules["dvlm.bench"] == "dvlm.bench.hooks"
    assert all(name.startswith("dvlm.") and (module.startswith("dvlm.plugins.") or module.endswith(".hooks"))
               for name, module in modules.items())


def test_the_live_registry_has_no_failed_builtin():
    registry = dvlm.registry()
    assert not {name: err for name, err in registry.failures.items() if name.startswith("dvlm.")}


def test_registry_can_be_reassembled_after_specs_were_built():
    """A reset rebuilds already-built spec classes from the new registry (no stale unions, no deadlock)."""
    from pydantic import TypeAdapter

    from dvlm.core.plugins import get_registry, reset_registry
    from dvlm.core.specs import Family, ModelSpec

    ModelSpec.model_json_schema()  # force the deferred build
    before = get_registry()
    reset_registry()
    after = get_registry()
    assert after is not before
    assert TypeAdapter(Family["schedules"]).json_schema() is not None
