"""Specs: frozen pydantic models that describe what to build and run, and their hash.

- ``Spec`` is the base of every spec: frozen, ``extra="forbid"`` (a typo is an error, never ignored),
  field docs as attribute docstrings.
- ``ComponentParams`` is the base of each plugin's params model; subclasses declare
  ``kind: Literal["<kind>"] = "<kind>"``.
- ``Family["backbones"]`` is the type of a field that holds any registered kind of a family: a
  discriminated union on ``kind``, built lazily from the registry, so a third-party kind validates
  exactly like a built-in one. Specs use ``defer_build`` so that no union is built before the
  plugins have loaded.
- ``load_spec(path)`` reads YAML or JSON; errors name the file, the path inside it and the value.

Hashing and defaults. ``spec_hash`` is the sha256 of the canonical JSON (sorted keys, compact
separators) of the *fully resolved* spec: defaults are included. The hash identifies what ran;
when a default changes, what runs changes, and so must the hash, or old and new results would be
mixed silently under one hash. The price is that adding a defaulted field changes every hash:
results from older versions are then recomputed rather than reused, which is the safe direction.
Fields declared with ``non_semantic(...)`` (device, output paths, worker counts) are left out:
they change where and how fast a run happens, not what it computes. Code provenance (git sha,
package versions, hardware) goes beside the hash in results, never into it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, TypeAdapter, ValidationError, model_validator
from pydantic_core import PydanticCustomError, core_schema

from dvlm.core.errors import SpecError

SEMANTIC_KEY = "x-dvlm-semantic"


class Spec(BaseModel):
    """Base of every dvlm spec: immutable, strict about unknown fields, built after plugins load."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True, use_attribute_docstrings=True)


class ComponentParams(Spec):
    """Base of a plugin's params model. Subclasses narrow ``kind`` to ``Literal["<their kind>"]``."""

    kind: str

    @classmethod
    def for_tests(cls) -> "ComponentParams":
        """A small valid instance for conformance tests; override when the defaults are large."""
        return cls()


def non_semantic(default: Any = None, **kwargs: Any) -> Any:
    """A field that does not change what a run computes (device, paths, workers): not hashed."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {}, **{SEMANTIC_KEY: False})
    return Field(default, json_schema_extra=extra, **kwargs)


class _FamilyUnion:
    """Annotation marker: validate as the discriminated union of a family's registered params."""

    def __init__(self, family: str) -> None:
        self.family = family

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        from dvlm.core.plugins import get_registry

        models = [entry.params for entry in get_registry().entries(self.family)]
        if not models:
            family = self.family

            def no_kinds(value: Any) -> Any:
                raise PydanticCustomError(
                    "no_kinds", "no {family} kinds are registered: install or enable a plugin that provides one",
                    {"family": family},
                )

            return core_schema.no_info_plain_validator_function(no_kinds, json_schema_input_schema=core_schema.none_schema())
        union = models[0] if len(models) == 1 else Annotated[Union[tuple(models)], Field(discriminator="kind")]
        aliases = {alias: e.kind for e in get_registry().entries(self.family) for alias in e.aliases}

        def canonical_kind(value: Any) -> Any:
            """Aliases validate as their kind; the resolved spec (and its hash) carries the kind."""
            if isinstance(value, dict) and value.get("kind") in aliases:
                return {**value, "kind": aliases[value["kind"]]}
            return value

        return core_schema.no_info_before_validator_function(canonical_kind, handler.generate_schema(union))


class Family:
    """``Family["schedules"]``: a field type accepting any registered kind of that family."""

    def __class_getitem__(cls, family: str) -> Any:
        return Annotated[ComponentParams, _FamilyUnion(family)]


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_all_subclasses(sub)]
    return out


_ADAPTERS: dict[str, TypeAdapter] = {}


def _adapter(doc_type: str) -> TypeAdapter:
    """The validator of a document type, built once per registry (building one costs ~20 ms)."""
    if doc_type not in _ADAPTERS:
        _ADAPTERS[doc_type] = TypeAdapter(top_level_types()[doc_type])
    return _ADAPTERS[doc_type]


def rebuild_params_models() -> None:
    """Rebuild every already-built spec class so its family unions reflect the current registry."""
    _ADAPTERS.clear()
    for cls in _all_subclasses(Spec):
        if cls.__pydantic_complete__:
            cls.model_rebuild(force=True)


# -- top-level specs -------------------------------------------------------------------------


class ModelSpec(Spec):
    """What to build: the backbone and, for a VLM, the vision encoder, projector and image layout, plus how
    text prompts are formatted (chat template, tokenizer) and guarded (context, image size)."""

    spec: Literal["model"] = "model"
    backbone: Family["backbones"]
    """The diffusion language backbone."""
    vision_encoder: Family["vision_encoders"] | None = None
    """The vision encoder; None for a text-only model."""
    projector: Family["projectors"] | None = None
    """Maps vision features to the backbone width; required when a vision encoder is set."""
    image_layout: Family["image_layouts"] | None = None
    """How an image becomes views and its features become tokens; required when a vision encoder is set."""
    chat_template: Family["chat_templates"] | None = None
    """Formats a conversation into the prompt text; None tokenises the prompt text as given."""
    tokenizer: str | None = non_semantic(None)
    """Folder of the tokenizer files (read with transformers' AutoTokenizer); needed for text prompts."""
    text_after_image: Literal["keep", "llava_inference"] = "keep"
    """The text right after each ``<image>``: ``keep`` every token (what training sees), or
    ``llava_inference``: as LLaVA's ``tokenizer_image_token`` at inference, which drops the first token after each
    image (the ``\\n``) when the prompt starts with BOS. Published LaViDa / LLaDA-V folders load with
    ``llava_inference``, the behaviour their published scores were measured with."""
    truncation: Literal["error", "left", "right"] = "error"
    """Prompt (text + image tokens) plus answer longer than the backbone's context: ``error`` (default),
    ``right`` keeps the start like LLaVA's truncation (which can cut the generation prompt), ``left`` keeps
    the BOS/system turn and the end. An image is kept or dropped whole (``dvlm/core/prompt_truncation.py``)."""
    max_image_pixels: int | None = non_semantic(89_478_485, ge=1)
    """Decompression-bomb guard: larger images are refused before decoding (Pillow's threshold); None: off."""

    @model_validator(mode="after")
    def _vision_parts(self) -> "ModelSpec":
        if self.vision_encoder is not None:
            missing = [name for name in ("projector", "image_layout") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"a vision encoder needs {' and '.join(missing)} too (e.g. projector: "
                                 f"{{kind: mlp2x_gelu}}, image_layout: {{kind: anyres}})")
        elif self.projector is not None or self.image_layout is not None:
            raise ValueError("projector and image_layout need a vision_encoder; remove them for a text-only model")
        return self


def top_level_types() -> dict[str, Any]:
    """Document type (the ``spec:`` key of a file) -> the type it validates as: ``model`` and ``sampler`` are
    core's; the others (``train``, ``matrix``, a plugin's own) are declared by the modules that own them through
    the ``dvlm_document_types`` hook, so core imports none of them."""
    from dvlm.core.plugins import get_registry

    core = {"model": ModelSpec, "sampler": Family["samplers"]}
    documents = get_registry().documents
    for name in core.keys() & documents.keys():
        raise SpecError(f"document type '{name}' is core's, but {documents[name].origin} declares it too; "
                        f"rename the plugin's document type or disable the plugin with DVLM_DISABLE_PLUGINS")
    return {**core, **{name: document.resolve() for name, document in documents.items()}}


# -- loading and errors ----------------------------------------------------------------------


def _location(data: Any, loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location as a path in the user's document.

    Pydantic inserts the discriminated-union tag (the canonical kind) right after the field that holds
    a component; the document has no such key (and may spell the kind as an alias), so one
    element that is not a key of a component mapping is dropped per mapping entered.
    """
    parts: list[str] = []
    node, tag_pending = data, True
    for item in loc:
        if tag_pending and isinstance(node, dict) and "kind" in node and item not in node:
            tag_pending = False
            continue
        parts.append(f"[{item}]" if isinstance(item, int) else str(item))
        if isinstance(node, dict):
            node = node.get(item)
        elif isinstance(node, list) and isinstance(item, int) and item < len(node):
            node = node[item]
        else:
            node = None
        tag_pending = True
    return ".".join(parts).replace(".[", "[") or "(top level)"


def format_validation_error(err: ValidationError, data: Any, source: str) -> str:
    lines = []
    for e in err.errors():
        where = _location(data, tuple(e["loc"]))
        value = "" if e["type"] == "missing" else f" (got {json.dumps(e['input'], default=str)[:120]})"
        hint = ""
        if e["type"] == "union_tag_invalid":  # an unknown kind: suggest the closest registered one
            tags = [t.strip(" '") for t in str(e["ctx"]["expected_tags"]).split(",")]
            close = difflib.get_close_matches(str(e["ctx"]["tag"]), tags, n=1, cutoff=0.5)
            hint = f". Did you mean '{close[0]}'?" if close else ""
        lines.append(f"{source}: {where}: {e['msg']}{value}{hint}")
    return "\n".join(lines)


def parse_spec(data: Any, source: str = "<spec>", as_type: str | None = None) -> Any:
    """Validate a mapping as a spec. The document type comes from ``as_type`` or its ``spec:`` key."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec must be a mapping, got {type(data).__name__}")
    types = top_level_types()
    doc_type = as_type or data.get("spec")
    if doc_type not in types:
        raise SpecError(
            f"{source}: spec: must name the document type, one of {', '.join(types)} (got {doc_type!r}). "
            f"Add e.g. `spec: model` at the top of the file."
        )
    body = dict(data)
    if types[doc_type] is not ModelSpec:
        body.pop("spec", None)
    try:
        return _adapter(doc_type).validate_python(body)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, body, source)) from None


def read_document(path: str | Path) -> Any:
    """Read a YAML or JSON file; a syntax error gives the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError(f"{path}: cannot read spec file: {err.strerror}") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"{path} line {err.lineno}, column {err.colno}: invalid JSON: {err.msg}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(f"{path}{where}: invalid YAML: {problem}") from None


def load_spec(path: str | Path, as_type: str | None = None) -> Any:
    """Load and validate a spec file (YAML or JSON) -> a frozen spec object."""
    return parse_spec(read_document(path), source=str(path), as_type=as_type)


# -- hashing ---------------------------------------------------------------------------------


def semantic_dump(value: Any) -> Any:
    """JSON-ready dump of a spec with non-semantic fields removed, recursively."""
    if isinstance(value, BaseModel):
        out = {}
        for name, info in type(value).model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if extra.get(SEMANTIC_KEY, True):
                out[name] = semantic_dump(getattr(value, name))
        return out
    if isinstance(value, dict):
        return {str(k): semantic_dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [semantic_dump(v) for v in value]
    return TypeAdapter(Any).dump_python(value, mode="json")


def canonical_json(spec: Any) -> str:
    return json.dumps(semantic_dump(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: Any) -> str:
    """sha256 hex digest of the canonical JSON of the resolved spec, non-semantic fields excluded."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def json_schema() -> dict[str, Any]:
    """JSON Schema of every top-level document type and of every family's union of kinds,
    including the installed plugins' kinds."""
    from dvlm.core.registry import FAMILIES

    return {
        "documents": {name: TypeAdapter(tp).json_schema() for name, tp in top_level_types().items()},
        "families": {family: TypeAdapter(Family[family]).json_schema() for family in FAMILIES},
    }
