"""LLaVA-format conversation files: read, validate, count and report malformed rows.

A row is ``{"id": ..., "image": "rel/path.png" | [paths] (optional), "conversations":
[{"from": "human" | "gpt" | "system", "value": text}, ...]}``, turns alternating human then gpt.
Image paths are relative to the image folder. A row whose first human turn lacks ``<image>``
while it has one image gets ``<image>\\n`` prepended (as LLaVA's and LaViDa's preprocessing do).

Malformed rows (missing image file, no answer turn, empty answer, turns out of order, more or
fewer ``<image>`` placeholders than images, not a conversation at all) are counted by reason and
either skipped or turned into one ``DataError`` that lists them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from dvlm.core.errors import DataError
from dvlm.core.tokenizer import IMAGE_PLACEHOLDER as IMAGE_TOKEN
MultiTurn = Literal["sample_round", "sample_round_with_history", "all_rounds"]
"""Which rounds of a multi-turn conversation a training example uses (see ``dvlm.data.encode``)."""
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


@dataclass(frozen=True)
class Record:
    """One valid conversation: ``turns`` are (role, text) with role user | assistant | system."""

    id: str
    turns: tuple[tuple[str, str], ...]
    images: tuple[str | Path, ...] = ()
    """Image file paths."""

    def rounds(self) -> list[int]:
        """Indices of the assistant turns (one per question/answer round)."""
        return [i for i, (role, _) in enumerate(self.turns) if role == "assistant"]


@dataclass
class LoadReport:
    """What was read: rows kept, and malformed rows per reason with a few example ids."""

    source: str
    total: int = 0
    kept: int = 0
    problems: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, row_id: str) -> None:
        self.problems[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(row_id)

    def summary(self) -> str:
        if not self.problems:
            return f"{self.source}: {self.kept} rows, none malformed"
        parts = ", ".join(f"{reason} {n} (e.g. {', '.join(self.examples[reason])})"
                          for reason, n in sorted(self.problems.items()))
        return f"{self.source}: {self.total - self.kept} of {self.total} rows malformed: {parts}"


class FileIndex:
    """``exists(path)`` from one directory listing per folder instead of one ``stat`` per row: hundreds
    of thousands of rows check their images in a second (and list a network file system once)."""

    def __init__(self) -> None:
        self._folders: dict[str, frozenset[str]] = {}

    def __call__(self, path: str) -> bool:
        folder, name = os.path.split(path)
        if folder not in self._folders:
            try:
                with os.scandir(folder or ".") as entries:
                    self._folders[folder] = frozenset(e.name for e in entries if e.is_file())
            except OSError:
                self._folders[folder] = frozenset()
        return name in self._folders[folder]


def check_row(row: object, index: int, image_folder: Path | str,
              exists: Callable[[str], bool] = os.path.isfile) -> tuple[Record | None, str, str]:
    """``(record, "", id)`` for a valid row, else ``(None, reason, id)``."""
    if not isinstance(row, dict):
        return None, "not_a_conversation", f"#{index}"
    row_id = str(row.get("id", f"#{index}"))
    conversations = row.get("conversations")
    if not isinstance(conversations, list) or not all(
        isinstance(t, dict) and t.get("from") in ROLES and isinstance(t.get("value"), str) for t in conversations
    ):
        return None, "not_a_conversation", row_id
    turns = [(ROLES[t["from"]], t["value"]) for t in conversations]
    body = turns[1:] if turns and turns[0][0] == "system" else turns
    if not any(role == "assistant" for role, _ in body):
        return None, "no_answer_turn", row_id
    if [role for role, _ in body] != ["user", "assistant"] * (len(body) // 2) or len(body) % 2:
        return None, "turns_out_of_order", row_id
    if any(role == "assistant" and not text.strip() for role, text in body):
        return None, "empty_answer", row_id
    image = row.get("image")
    names = [] if image is None else [image] if isinstance(image, str) else image
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None, "not_a_conversation", row_id
    images = tuple(os.path.join(image_folder, name) for name in names)  # str: Path() costs more than the check
    if not all(exists(path) for path in images):
        return None, "missing_image", row_id
    placeholders = sum(text.count(IMAGE_TOKEN) for _, text in turns)
    if placeholders == 0 and len(images) == 1:
        first_user = next(i for i, (role, _) in enumerate(turns) if role == "user")
        turns[first_user] = ("user", f"{IMAGE_TOKEN}\n{turns[first_user][1]}")
    elif placeholders != len(images):
        return None, "image_placeholder_mismatch", row_id
    return Record(row_id, tuple(turns), images), "", row_id


def load_llava(file: str | Path, image_folder: str | Path | None = None,
               malformed: Literal["skip", "fail"] = "skip") -> tuple[list[Record], LoadReport]:
    """Read a LLaVA-format JSON list; image paths resolve against ``image_folder`` (default: the file's folder)."""
    file = Path(file)
    folder = Path(image_folder) if image_folder is not None else file.parent
    try:
        rows = json.loads(file.read_text())
    except OSError as err:
        raise DataError(f"{file}: cannot read the data file: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{file} line {err.lineno}, column {err.colno}: invalid JSON: {err.msg}") from None
    if not isinstance(rows, list):
        raise DataError(f"{file}: expected a JSON list of conversation rows, got {type(rows).__name__}")
    report = LoadReport(str(file), total=len(rows))
    records = []
    exists = FileIndex()
    for index, row in enumerate(rows):
        record, reason, row_id = check_row(row, index, folder, exists)
        if record is None:
            report.add(reason, row_id)
        else:
            records.append(record)
    report.kept = len(records)
    if report.problems and malformed == "fail":
        raise DataError(report.summary() + ". Fix these rows, or set `data.malformed: skip` to leave them out.")
    if not records:
        raise DataError(f"{report.summary()}; no usable rows are left to train on")
    return records, report
