"""Every hookspec follows the one docstring template, and the README documents every hook."""

import inspect
from pathlib import Path

import pytest

from dvlm.core import hookspecs
from dvlm.core.registry import FAMILIES, HOOK_PREFIX

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("family", FAMILIES)
def test_hookspec_docstring_follows_the_template(family):
    hook = getattr(hookspecs, HOOK_PREFIX + family)
    assert list(inspect.signature(hook).parameters) == ["register"]
    doc = inspect.getdoc(hook)
    assert doc.splitlines()[0].startswith("Register "), "first line: what to register"
    assert "Factory: ``factory(params" in doc, "the factory contract"
    assert ":param register: ``register(kind, factory, params, aliases=())``." in doc
    assert doc.rstrip().splitlines()[-1].startswith(":since: "), "last line: since-version"


@pytest.mark.parametrize("family", FAMILIES)
def test_readme_lists_every_hook(family):
    assert f"_{family}`" in README
