"""Special-token ids of a published folder: the one place that decides them.

Precedence, per role (``mask_token_id``, ``eos_token_id``, ``pad_token_id``, ``eot_token_id``,
``bos_token_id``):

1. ``config.json``'s field of that name;
2. ``generation_config.json``'s field;
3. the tokenizer files: the token text the tokenizer names for the role (``tokenizer_config.json``'s
   ``bos_token`` / ``eos_token`` / ``pad_token`` / ``mask_token``; else the layout's spelling, e.g.
   ``<|mdm_mask|>``), looked up in ``tokenizer_config.json`` ``added_tokens_decoder``, ``added_tokens.json``
   or ``tokenizer.json`` ``added_tokens``.

An id outside the vocabulary is skipped with a warning (LLaDA-V's LLaDA ``config.json`` says
``bos_token_id: 128000``, a Llama leftover beyond its 126,464 tokens; its ``generation_config.json`` says
126080). When two sources give different valid ids, the first one wins and a warning names both.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dvlm.core.checkpoint_config import CONFIG, GENERATION_CONFIG, read_optional_json

TOKENIZER_FIELD = {"mask_token_id": "mask_token", "eos_token_id": "eos_token", "pad_token_id": "pad_token",
                   "bos_token_id": "bos_token"}
"""Role -> the ``tokenizer_config.json`` field that names the role's token text."""


@dataclass(frozen=True)
class SpecialToken:
    """One role's id and the file (and field) it came from; ``id`` is None when no source names it."""

    id: int | None
    source: str | None


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):  # special_tokens_map.json / tokenizer_config.json AddedToken form
        return value.get("content")
    return value if isinstance(value, str) else None


def tokenizer_token_ids(folder: Path) -> dict[str, tuple[int, str]]:
    """Token text -> (id, file) of every added token the tokenizer files list."""
    table: dict[str, tuple[int, str]] = {}
    tokenizer_json = folder / "tokenizer.json"
    if tokenizer_json.is_file():
        for entry in json.loads(tokenizer_json.read_text()).get("added_tokens", []):
            table[entry["content"]] = (int(entry["id"]), "tokenizer.json")
    for text, i in read_optional_json(folder / "added_tokens.json").items():
        table[text] = (int(i), "added_tokens.json")
    decoder = read_optional_json(folder / "tokenizer_config.json").get("added_tokens_decoder", {})
    for i, entry in decoder.items():
        if "content" in entry:
            table[entry["content"]] = (int(i), "tokenizer_config.json")
    return table


def resolve_special_tokens(folder: Path, config: Mapping[str, Any], spellings: Mapping[str, str],
                           vocab_size: int) -> tuple[dict[str, SpecialToken], list[str]]:
    """(role -> ``SpecialToken`` for every role in ``spellings`` (role -> the layout's token text), the notes
    warned about: ids outside the vocabulary, sources that disagree)."""
    generation = read_optional_json(folder / GENERATION_CONFIG)
    tokenizer_config = read_optional_json(folder / "tokenizer_config.json")
    table: dict[str, tuple[int, str]] | None = None
    resolved, notes = {}, []
    for role, spelling in spellings.items():
        candidates: list[tuple[int, str]] = []
        for name, source in ((CONFIG, config), (GENERATION_CONFIG, generation)):
            if source.get(role) is not None and not isinstance(source[role], list):
                candidates.append((int(source[role]), f"{name} {role}"))
        text = _token_text(tokenizer_config.get(TOKENIZER_FIELD.get(role, ""))) or spelling
        if table is None:
            table = tokenizer_token_ids(folder)
        if text in table:
            candidates.append((table[text][0], f"{table[text][1]} {text}"))
        valid = []
        for value, source in candidates:
            if 0 <= value < vocab_size:
                valid.append((value, source))
            else:
                notes.append(f"{source} = {value} is outside the {vocab_size}-token vocabulary: ignored")
        if any(value != valid[0][0] for value, _ in valid):
            others = ", ".join(f"{source} = {value}" for value, source in valid[1:] if value != valid[0][0])
            notes.append(f"{role}: using {valid[0][1]} = {valid[0][0]}; other sources disagree ({others})")
        resolved[role] = SpecialToken(*valid[0]) if valid else SpecialToken(None, None)
    for note in notes:
        warnings.warn(f"{folder}: {note}", stacklevel=3)
    return resolved, notes
