"""``dvlm/core`` imports no plugin, no training and no benchmark module: concrete kinds and document types
arrive through the registry (DESIGN section 1). Checked on the source, so a lazy import inside a function
counts too."""

import ast
from pathlib import Path

import pytest

import dvlm

CORE = Path(dvlm.__file__).parent / "core"
FORBIDDEN = ("dvlm.plugins", "dvlm.bench", "dvlm.train")


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` / ``from ... import`` statement of the file names (relative ones resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package dvlm.core
                base = ".".join(["dvlm", "core"][: 3 - node.level] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_plugin_training_or_benchmark_module(path):
    bad = sorted(name for name in imported_modules(path) if name.startswith(FORBIDDEN))
    assert not bad, f"dvlm/core/{path.name} imports {bad}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from dvlm.plugins.backbones.params import LladaParams\n    import dvlm.bench\n")
    assert {"dvlm.plugins.backbones.params", "dvlm.bench"} <= imported_modules(source)


def test_document_types_are_declared_by_their_owners():
    registry = dvlm.registry()
    assert {name: d.origin.plugin for name, d in registry.documents.items()} == {
        "train": "dvlm.train", "matrix": "dvlm.bench"}


def test_a_plugin_declares_its_own_document_type_and_cannot_take_a_core_one():
    from typing import Literal

    from dvlm.core.errors import SpecError
    from dvlm.core.plugins import add_plugin, remove_plugin
    from dvlm.core.specs import Spec, parse_spec

    class SweepSpec(Spec):
        spec: Literal["sweep"] = "sweep"
        trials: int

    class Plugin:
        @dvlm.hookimpl
        def dvlm_document_types(self, register):
            register("sweep", SweepSpec)

    add_plugin(Plugin(), "sweeps")
    try:
        assert parse_spec({"spec": "sweep", "trials": 3}).trials == 3
    finally:
        remove_plugin("sweeps")

    class Thief:
        @dvlm.hookimpl
        def dvlm_document_types(self, register):
            register("model", SweepSpec)

    add_plugin(Thief(), "thief")
    try:
        with pytest.raises(SpecError, match="document type 'model' is core's, but plugin 'thief'"):
            parse_spec({"spec": "model"})
    finally:
        remove_plugin("thief")
