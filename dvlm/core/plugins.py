"""The plugin manager: discovers plugins lazily and assembles the registry.

Nothing here runs at ``import dvlm``: the registry is assembled on first use
(``dvlm.registry()``). Built-in plugins (``dvlm/plugins/*``) and third-party ones (entry-point
group ``dvlm``) go through the same path: import the module, register it with pluggy, call each of
its registration hooks with a ``register`` callback. A plugin that fails to import or to register
is recorded in ``Registry.failures`` by name with its error; the other plugins still load, and a
failed plugin leaves no partial registrations behind.

Environment:
- ``DVLM_PLUGINS=a,b``: allowlist of third-party plugins (entry-point or distribution names);
  empty loads none. Built-ins always load unless disabled.
- ``DVLM_DISABLE_PLUGINS=a,b``: plugins never to load (third-party or built-in, e.g. ``dvlm.samplers``).
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import pkgutil
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pluggy

from dvlm.core import hookspecs
from dvlm.core.registry import FAMILIES, HOOK_PREFIX, DocumentType, Entry, Origin, Registry

ENTRY_POINT_GROUP = "dvlm"



def builtin_plugin_modules() -> dict[str, str]:
    """Built-in plugins, found on disk without importing them: every sub-package of ``dvlm/plugins``
    (``{"dvlm.<name>": "dvlm.plugins.<name>"}``), and the ``hooks`` module of every other dvlm package that has one
    (``{"dvlm.<package>": "dvlm.<package>.hooks"}``: e.g. training declares its ``train`` document type)."""
    root = Path(__file__).resolve().parents[1]  # the dvlm package
    modules = {
        f"dvlm.{info.name}": f"dvlm.plugins.{info.name}"
        for info in pkgutil.iter_modules([str(root / "plugins")])
        if info.ispkg and not info.name.startswith("_")
    }
    for info in pkgutil.iter_modules([str(root)]):
        if info.ispkg and info.name not in ("core", "plugins") and (root / info.name / "hooks.py").is_file():
            modules[f"dvlm.{info.name}"] = f"dvlm.{info.name}.hooks"
    return modules


@dataclass(frozen=True)
class Candidate:
    """A plugin that may be loaded: its name, provenance and how to import it."""

    name: str
    origin: Origin
    load: Callable[[], Any]
    builtin: bool


def _env_list(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {item.strip() for item in raw.split(",") if item.strip()}


def _dvlm_version() -> str:
    from dvlm import __version__

    return __version__


def builtin_candidates() -> list[Candidate]:
    origin_version = _dvlm_version()
    return [
        Candidate(name, Origin(name, "dvlm", origin_version), lambda m=module: importlib.import_module(m), True)
        for name, module in builtin_plugin_modules().items()
    ]


def entry_point_candidates() -> list[Candidate]:
    candidates = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        origin = Origin(ep.name, dist.name if dist else "unknown", dist.version if dist else "unknown")
        candidates.append(Candidate(ep.name, origin, ep.load, False))
    return candidates


def _selected(candidate: Candidate, allow: set[str] | None, block: set[str]) -> bool:
    names = {candidate.name, candidate.origin.distribution}
    if candidate.builtin:
        return candidate.name not in block
    if names & block:
        return False
    return allow is None or bool(names & allow)


def _register_plugin(pm: pluggy.PluginManager, registry: Registry, candidate: Candidate) -> None:
    """Import one plugin and run its registration hooks; all-or-nothing."""
    module = candidate.load()
    pm.register(module, name=candidate.name)
    staged: list[Entry] = []
    try:
        for family in FAMILIES:
            hook_name = HOOK_PREFIX + family
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not module:
                    continue

                def register(kind: str, factory: Any, params: type, aliases: tuple[str, ...] = (), *, _f=family) -> None:
                    staged.append(Entry(_f, kind, factory, params, candidate.origin, tuple(aliases)))

                impl.function(**{arg: register for arg in impl.argnames})  # `register` is the only argument
        documents: list[DocumentType] = []
        for impl in pm.hook.dvlm_document_types.get_hookimpls():
            if impl.plugin is module:
                impl.function(register=lambda name, spec_type: documents.append(
                    DocumentType(name, spec_type, candidate.origin)))
        committed: list[Entry] = []
        declared: list[str] = []
        try:
            for entry in staged:
                registry.add(entry)
                committed.append(entry)
            for document in documents:
                registry.add_document(document)
                declared.append(document.name)
        except Exception:
            for entry in committed:
                registry.remove(entry)
            for name in declared:
                registry.documents.pop(name)
            raise
    except Exception:
        pm.unregister(module, name=candidate.name)
        raise
    registry.plugins[candidate.name] = candidate.origin


def assemble_registry(candidates: list[Candidate] | None = None) -> Registry:
    """Load the selected plugins into a fresh registry, isolating failures per plugin."""
    pm = pluggy.PluginManager("dvlm")
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    allow, block = _env_list("DVLM_PLUGINS"), _env_list("DVLM_DISABLE_PLUGINS") or set()
    if candidates is None:
        candidates = builtin_candidates() + entry_point_candidates()
    for candidate in candidates:
        if not _selected(candidate, allow, block):
            continue
        try:
            _register_plugin(pm, registry, candidate)
        except Exception as exc:  # a broken plugin must not take the others down
            registry.failures[candidate.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"dvlm plugin '{candidate.name}' ({candidate.origin.distribution}) failed to load: {exc}",
                          stacklevel=2)
    return registry


_lock = threading.RLock()  # re-entrant: rebuilding spec unions reads the registry
_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, assembled on first call."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = assemble_registry()
            from dvlm.core.specs import rebuild_params_models

            rebuild_params_models()
        return _registry


def reset_registry() -> None:
    """Forget the assembled registry (tests, or after installing a plugin in a running process)."""
    global _registry
    with _lock:
        _registry = None


def add_plugin(plugin: Any, name: str) -> None:
    """Register a plugin object (a module or any object with hookimpls) into the live registry.

    For notebooks and tests: the same path as discovered plugins, without packaging. A failure
    raises here (nothing is half-registered) instead of being recorded.
    """
    registry = get_registry()
    pm = pluggy.PluginManager("dvlm")
    pm.add_hookspecs(hookspecs)
    origin = Origin(name, "<runtime>", "0")
    _register_plugin(pm, registry, Candidate(name, origin, lambda: plugin, builtin=False))
    from dvlm.core.specs import rebuild_params_models

    rebuild_params_models()


def remove_plugin(name: str) -> None:
    """Undo ``add_plugin``: drop every kind the named plugin registered."""
    registry = get_registry()
    for entry in registry.entries():
        if entry.origin.plugin == name:
            registry.remove(entry)
    for document in list(registry.documents.values()):
        if document.origin.plugin == name:
            registry.documents.pop(document.name)
    registry.plugins.pop(name, None)
    from dvlm.core.specs import rebuild_params_models

    rebuild_params_models()
