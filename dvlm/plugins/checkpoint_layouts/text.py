"""What every text-only published layout shares: read a backbone folder (config, special tokens, dtype,
tokenizer and its own chat template) and write one (config, generation config, renamed tensors, tokenizer).

A layout is a :class:`TextFormat` (how its config and tensor names map onto a backbone kind) plus the
generic :class:`TextLayout` reader/writer. Text-only folders use the tokenizer's own ``chat_template``
(``chat_template: {kind: tokenizer}``), which is what LLaDA's ``generate.py`` / ``chat.py`` and Dream's demo do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dvlm.core.checkpoint import (
    check_destination,
    checkpoint_layouts,
    dtype_name,
    write_json,
    write_tensors,
    write_tokenizer,
)
from dvlm.core.checkpoint_config import CONFIG, GENERATION_CONFIG, SPEC, ConfigFile, read_optional_json
from dvlm.core.errors import CheckpointError
from dvlm.core.interfaces import CheckpointReading
from dvlm.core.special_tokens import resolve_special_tokens
from dvlm.core.specs import parse_spec
from dvlm.core.tokenizer import has_tokenizer, load_tokenizer

ROLES = ("mask_token_id", "eos_token_id", "pad_token_id", "eot_token_id", "bos_token_id")


@dataclass(frozen=True)
class TextFormat:
    """One backbone layout: recognising its config, config <-> backbone params, tensor names both ways."""

    backbone_kind: str
    """The dvlm backbone kind this layout holds (``llada``, ``dream``)."""
    matches: Callable[[dict[str, Any]], bool]
    """Whether a ``config.json`` is this layout's (text-only or the backbone part of a multimodal one)."""
    vocab_size: Callable[[ConfigFile], int]
    params: Callable[[ConfigFile, dict[str, int | None]], Any]
    """Config + resolved special-token ids -> the backbone kind's params (dtype = the stored one)."""
    config: Callable[[Any], dict[str, Any]]
    """Backbone params -> the published ``config.json`` fields."""
    key_in: Callable[[str], str]
    """Published tensor name -> backbone parameter name."""
    key_out: Callable[[str], str]
    """Backbone parameter name -> published tensor name."""
    spellings: dict[str, str]
    """Special-token role -> the token's text in this family's tokenizer."""
    family_template: str
    """The dvlm chat template kind of the family (used by the LLaVA conversation of multimodal folders)."""


def model_type_of(config: dict[str, Any]) -> str:
    return str(config.get("model_type", "")).lower()


def read_backbone(config: ConfigFile, fmt: TextFormat) -> tuple[Any, dict[str, str], list[str]]:
    """(backbone params, role -> source, quirks) of a config, special tokens decided in one place."""
    resolved, notes = resolve_special_tokens(config.folder, config.data, fmt.spellings, fmt.vocab_size(config))
    for role in ("mask_token_id", "eos_token_id"):
        if resolved[role].id is None:
            raise CheckpointError(
                f"{config.path}: missing field '{role}' and no tokenizer file in {config.folder} names "
                f"'{fmt.spellings[role]}'; add \"{role}\" to {config.name}")
    ids = {role: token.id for role, token in resolved.items()}
    if ids["pad_token_id"] is None:
        ids["pad_token_id"] = ids["eos_token_id"]
    sources = {role: token.source for role, token in resolved.items() if token.source is not None}
    quirks = list(notes)
    if config.dtype_source() != f"{config.name} torch_dtype":
        quirks.append(f"{config.name} has no torch_dtype: the stored dtype ({config.dtype()}) is read from the "
                      f"safetensors headers")
    return fmt.params(config, ids), sources, quirks


def read_tokenizer(folder: Path) -> tuple[Any, list[str]]:
    """The folder's tokenizer (None without tokenizer files) and the quirks met building it."""
    if not has_tokenizer(folder):
        return None, []
    quirks = []
    config = read_optional_json(folder / "tokenizer_config.json")
    if not (folder / "tokenizer.json").is_file() and (folder / "vocab.json").is_file():
        quirks.append(f"no tokenizer.json: the byte-level BPE is built from vocab.json + merges.txt + added tokens "
                      f"(the folder's remote-code {config.get('tokenizer_class')} is never run)")
    elif "auto_map" in config or config.get("trust_remote_code"):
        quirks.append("tokenizer_config.json asks for remote code: tokenizer.json is read with "
                      "PreTrainedTokenizerFast and no code from the folder runs")
    return load_tokenizer(folder), quirks


def fitting_layouts(backbone_kind: str, vision: bool) -> list[str]:
    """The registered layouts that hold a model of ``backbone_kind`` (with its vision parts when ``vision``)."""
    fits = [kind for kind, layout in checkpoint_layouts().items() if getattr(layout, "fmt", None) is not None
            and layout.fmt.backbone_kind == backbone_kind and getattr(layout, "keeps_vision", False) == vision]
    return [*fits, "dvlm"]


def check_fits(name: str, fmt: TextFormat, model: Any) -> None:
    """Refuse, before anything is written, a model whose backbone kind the layout ``name`` does not hold."""
    kind = model.spec.backbone.kind
    if kind != fmt.backbone_kind:
        raise CheckpointError(
            f"the '{name}' layout holds a '{fmt.backbone_kind}' backbone but this model's backbone is '{kind}'; "
            f"write it with one of the layouts that fit: {', '.join(fitting_layouts(kind, model.vision is not None))}")


class TextLayout:
    """A text-only published layout (``CheckpointLayout``) over a :class:`TextFormat`."""

    keeps_vision = False

    def __init__(self, name: str, summary: str, fmt: TextFormat) -> None:
        self.name, self.summary, self.fmt = name, summary, fmt

    def detect(self, folder: Path) -> bool:
        config = read_optional_json(folder / CONFIG)
        return bool(config) and self.fmt.matches(config)

    def read(self, folder: Path) -> CheckpointReading:
        config = ConfigFile.read(folder)
        backbone, sources, quirks = read_backbone(config, self.fmt)
        tokenizer, tokenizer_quirks = read_tokenizer(folder)
        template = {"kind": "tokenizer"} if getattr(tokenizer, "chat_template", None) else None
        spec = parse_spec({"backbone": backbone.model_dump(), "chat_template": template}, source=str(config.path),
                          as_type="model")
        return CheckpointReading(spec=spec, rename=lambda name: "backbone." + self.fmt.key_in(name),
                                 tokenizer=tokenizer, dtype_source=config.dtype_source(),
                                 special_token_sources=sources, quirks=(*quirks, *tokenizer_quirks))

    def write(self, model: Any, folder: Path, max_shard_bytes: int = 4 << 30, overwrite: bool = False) -> None:
        folder = Path(folder)
        check_fits(self.name, self.fmt, model)
        if model.vision is not None:
            raise CheckpointError(
                f"the '{self.name}' layout is text-only: writing this vision-language model into it would drop its "
                f"vision encoder, projector and image settings; use a layout that keeps the vision parts: "
                f"{', '.join(fitting_layouts(model.spec.backbone.kind, vision=True))}")
        check_destination(folder, overwrite)
        backbone = model.backbone
        params = backbone.params.model_copy(update={"dtype": dtype_name(backbone)})
        write_tensors({self.fmt.key_out(name): t for name, t in backbone.state_dict().items()}, folder,
                      max_shard_bytes)
        write_tokenizer(model, folder)
        write_published_configs(folder, self.fmt.config(params), params)


def write_published_configs(folder: Path, config: dict[str, Any], params: Any) -> None:
    """``config.json`` and ``generation_config.json`` (bos/eos/pad ids as the published folders carry them)."""
    generation = {"_from_model_config": True, **{role: getattr(params, role) for role in
                                                 ("bos_token_id", "eos_token_id", "pad_token_id")
                                                 if getattr(params, role, None) is not None}}
    write_json(folder / GENERATION_CONFIG, generation)
    write_json(folder / CONFIG, config)
    (folder / SPEC).unlink(missing_ok=True)  # an overwritten dvlm checkpoint's spec would make it ambiguous
