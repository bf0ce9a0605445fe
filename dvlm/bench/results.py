"""The results store of a matrix run: one JSONL row per cell, resumable, never a partial row.

A results folder holds ``results.jsonl`` and ``meta.json`` (which records ``RESULTS_VERSION``). Rows are
appended whole with one ``write`` on an ``O_APPEND`` descriptor followed by ``fsync``; a run killed
mid-write leaves at most a torn last line, which ``load`` drops (and ``open`` truncates) instead of
reading it as a result. Re-running skips the cells whose spec hash already has a row.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

from dvlm.core.errors import DvlmError

RESULTS_VERSION = 1

#: keys every row carries, in this order
ROW_KEYS = (
    "results_version", "spec_hash", "cell", "axes", "spec", "status", "error", "metrics", "per_sample", "nfe",
    "tokens_per_forward", "latency_s_per_sample", "kv_rows_recomputed", "traces", "seeds", "started_at", "duration_s",
    "git_sha", "git_dirty", "lock_sha256", "versions", "plugins", "hardware",
)


class IncompatibleResultsError(DvlmError):
    """The results folder was written by an incompatible version of the benchmark code."""


def make_row(*, spec_hash: str, cell: str, axes: dict[str, str], spec: Any, status: str,
             provenance: dict[str, Any], error: str | None = None, metrics: dict[str, float] | None = None,
             per_sample: dict[str, list[float]] | None = None, traces: dict[str, Any] | None = None,
             nfe: float | None = None, tokens_per_forward: float | None = None,
             latency_s_per_sample: float | None = None, kv_rows_recomputed: float | None = None,
             seeds: dict[str, int] | None = None,
             started_at: float | None = None, duration_s: float | None = None) -> dict[str, Any]:
    if status not in ("ok", "failed"):
        raise ValueError(f"status must be 'ok' or 'failed', got {status!r}")
    row = {
        "results_version": RESULTS_VERSION, "spec_hash": spec_hash, "cell": cell, "axes": axes, "spec": spec,
        "status": status, "error": error, "metrics": metrics or {}, "per_sample": per_sample or {}, "nfe": nfe,
        "tokens_per_forward": tokens_per_forward, "latency_s_per_sample": latency_s_per_sample,
        "kv_rows_recomputed": kv_rows_recomputed,
        "traces": traces or {},
        "seeds": seeds or {}, "started_at": started_at if started_at is not None else time.time(),
        "duration_s": duration_s,
    }
    row.update({key: provenance.get(key)
                for key in ("git_sha", "git_dirty", "lock_sha256", "versions", "plugins", "hardware")})
    return row


class ResultsStore:
    """``results.jsonl`` + ``meta.json`` in one folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.rows_path = self.folder / "results.jsonl"
        self.meta_path = self.folder / "meta.json"

    def owner(self) -> str | None:
        """The matrix that made this folder (None: unknown, a folder older than this record)."""
        return json.loads(self.meta_path.read_text()).get("matrix") if self.meta_path.exists() else None

    def open(self, matrix: str | None = None) -> list[dict[str, Any]]:
        """Create or check the folder; return the complete rows already there (a torn tail is cut). A new
        folder's ``meta.json`` records the ``matrix`` that made it (its report stays at the top)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.meta_path.exists():
            meta = json.loads(self.meta_path.read_text())
            if meta.get("results_version") != RESULTS_VERSION:
                raise IncompatibleResultsError(
                    f"{self.folder}: results written by results_version {meta.get('results_version')}, this dvlm "
                    f"writes version {RESULTS_VERSION}. Use a new --out folder, or move the old one away to rerun."
                )
        else:
            tmp = self.meta_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"results_version": RESULTS_VERSION, "matrix": matrix}) + "\n")
            os.replace(tmp, self.meta_path)
        rows, good_bytes = self._read()
        if self.rows_path.exists() and self.rows_path.stat().st_size != good_bytes:
            with open(self.rows_path, "r+b") as handle:
                handle.truncate(good_bytes)
        return rows

    def _read(self) -> tuple[list[dict[str, Any]], int]:
        if not self.rows_path.exists():
            return [], 0
        rows, good = [], 0
        with open(self.rows_path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # torn final write
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break
                good += len(line)
        return rows, good

    def rows(self) -> list[dict[str, Any]]:
        return self._read()[0]

    def done(self) -> set[str]:
        """Spec hashes that already have a row."""
        return {row["spec_hash"] for row in self.rows()}

    def append(self, row: dict[str, Any]) -> None:
        """Append one row atomically (single write, then fsync)."""
        data = (json.dumps(row, sort_keys=False, default=str) + "\n").encode()
        fd = os.open(self.rows_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.append(row)
