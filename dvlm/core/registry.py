"""The registry: family -> kind -> (factory, params model, origin).

Plugins fill it through the ``register`` callback their hooks receive (see ``hookspecs.py``).
Factories may be lazy ``"module:attribute"`` strings, resolved on first use, so that assembling
the registry imports no heavy library. The registry owns collisions (an error naming both
origins), aliases and provenance.
"""

from __future__ import annotations

import difflib
import importlib
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from dvlm.core import hookspecs
from dvlm.core.errors import RegistryError, UnknownKindError

HOOK_PREFIX = "dvlm_register_"

#: Every family, in hookspec order: the suffix of each ``dvlm_register_<family>`` hook.
FAMILIES: tuple[str, ...] = tuple(
    name[len(HOOK_PREFIX):] for name in hookspecs.__dict__ if name.startswith(HOOK_PREFIX)
)


@dataclass(frozen=True)
class Origin:
    """Where a registration came from: the plugin name and the distribution that shipped it."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' from {self.distribution} {self.version}"


@dataclass
class DocumentType:
    """A top-level document type (``spec: <name>``) declared through the ``dvlm_document_types`` hook."""

    name: str
    type_ref: Any
    """The type to validate with, or a lazy ``"module:attribute"`` reference to it."""
    origin: Origin

    def resolve(self) -> Any:
        return resolve_reference(self.type_ref)


@dataclass
class Entry:
    """One registered kind. ``factory`` is resolved from its lazy reference on first use."""

    family: str
    kind: str
    factory_ref: Callable[..., Any] | str
    params: type
    origin: Origin
    aliases: tuple[str, ...] = ()
    _factory: Callable[..., Any] | None = field(default=None, repr=False)

    @property
    def factory(self) -> Callable[..., Any]:
        if self._factory is None:
            self._factory = resolve_reference(self.factory_ref)
        return self._factory


def resolve_reference(ref: Callable[..., Any] | str) -> Callable[..., Any]:
    """Import ``"package.module:attr.sub"`` (or return a callable unchanged)."""
    if callable(ref):
        return ref
    module_name, _, attr_path = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def check_params_model(family: str, kind: str, params: type) -> None:
    """A params model must be a ComponentParams subclass whose ``kind`` is ``Literal[kind]``."""
    from dvlm.core.specs import ComponentParams

    where = f"registering {family} kind '{kind}'"
    if not (isinstance(params, type) and issubclass(params, ComponentParams)):
        raise RegistryError(f"{where}: params must subclass dvlm.core.specs.ComponentParams, got {params!r}")
    kind_field = params.model_fields.get("kind")
    literal = typing.get_args(kind_field.annotation) if kind_field is not None else ()
    if kind_field is None or typing.get_origin(kind_field.annotation) is not typing.Literal or literal != (kind,):
        raise RegistryError(
            f"{where}: {params.__name__} must declare `kind: Literal['{kind}'] = '{kind}'`"
        )
    if kind_field.default != kind:
        raise RegistryError(f"{where}: {params.__name__}.kind must default to '{kind}'")


class Registry:
    """family -> kind -> Entry, with aliases. Built by ``dvlm.core.plugins``; read via ``dvlm.registry()``."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {family: {} for family in FAMILIES}
        self._aliases: dict[str, dict[str, str]] = {family: {} for family in FAMILIES}
        #: plugins that failed to import or register: name -> error message
        self.failures: dict[str, str] = {}
        #: plugins that loaded: name -> Origin
        self.plugins: dict[str, Origin] = {}
        #: top-level document types: name -> DocumentType
        self.documents: dict[str, DocumentType] = {}

    # -- writing ---------------------------------------------------------------------------
    def add(self, entry: Entry) -> None:
        """Add one kind; a name (kind or alias) taken already is an error naming both origins."""
        if entry.family not in self._entries:
            raise RegistryError(f"unknown family '{entry.family}'; families are: {', '.join(FAMILIES)}")
        check_params_model(entry.family, entry.kind, entry.params)
        for name in (entry.kind, *entry.aliases):
            holder = self._lookup(entry.family, name)
            if holder is not None:
                raise RegistryError(
                    f"{entry.family} kind '{name}' is registered twice: by {holder.origin} and by "
                    f"{entry.origin}. Uninstall one of them or disable it with DVLM_DISABLE_PLUGINS."
                )
        self._entries[entry.family][entry.kind] = entry
        for alias in entry.aliases:
            self._aliases[entry.family][alias] = entry.kind

    def add_document(self, document: DocumentType) -> None:
        """Declare a document type; a name declared twice is an error naming both origins."""
        holder = self.documents.get(document.name)
        if holder is not None:
            raise RegistryError(f"document type '{document.name}' is declared twice: by {holder.origin} and by "
                                f"{document.origin}. Uninstall one of them or disable it with DVLM_DISABLE_PLUGINS.")
        self.documents[document.name] = document

    def remove(self, entry: Entry) -> None:
        """Undo ``add`` (used to roll back a plugin whose registration failed half-way)."""
        self._entries[entry.family].pop(entry.kind, None)
        for alias in entry.aliases:
            self._aliases[entry.family].pop(alias, None)

    # -- reading ---------------------------------------------------------------------------
    def _lookup(self, family: str, name: str) -> Entry | None:
        kinds = self._entries[family]
        return kinds.get(name) or kinds.get(self._aliases[family].get(name, ""))

    def get(self, family: str, kind: str) -> Entry:
        """The entry for ``kind`` (or an alias); an unknown kind lists what exists and the closest."""
        if family not in self._entries:
            raise UnknownKindError(_unknown("family", family, FAMILIES))
        entry = self._lookup(family, kind)
        if entry is None:
            names = sorted([*self._entries[family], *self._aliases[family]])
            raise UnknownKindError(_unknown(f"{family} kind", kind, names))
        return entry

    def kinds(self, family: str) -> list[str]:
        """Registered kinds of a family (aliases excluded), sorted."""
        return sorted(self._entries[family])

    def entries(self, family: str | None = None) -> list[Entry]:
        families = FAMILIES if family is None else (family,)
        return [self._entries[f][k] for f in families for k in sorted(self._entries[f])]

    def build(self, family: str, params: Any, *args: Any, **kwargs: Any) -> Any:
        """Run the factory of ``params.kind`` on validated params."""
        return self.get(family, params.kind).factory(params, *args, **kwargs)


def _unknown(what: str, name: str, available: typing.Iterable[str]) -> str:
    available = list(available)
    close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    listing = ", ".join(available) if available else "(none: is the plugin that provides it installed and enabled?)"
    return f"unknown {what} '{name}'. Available: {listing}.{hint}"
