"""The lock of tested dependency versions (``requirements.lock`` at the repository root): read, hash, check, write.

``make`` installs with ``pip install -c requirements.lock``, so a fresh clone gets exactly the versions the tests
passed with, today and in a year; pyproject keeps ranges for people who install dvlm into their own environment.
The lock is a pip constraints file (``name==version`` lines, ``#`` comments), so pip itself reads it and a lock
that lists test-only packages still constrains a main-job install that does not ask for them.

``python -m dvlm.core.environment_lock check [--extras dev]`` names every installed distribution whose version
differs from the lock, every installed one the lock does not list, and every requirement of dvlm (with those
extras) that is not installed -- so drift is named up front instead of surfacing as an import error deep in a
library. ``freeze`` writes the lock of the running environment (``make lock`` calls it after the tests pass).
Results rows record :func:`lock_hash`, which says which locked environment produced them.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from dvlm.core.errors import DvlmError

LOCK_NAME = "requirements.lock"
#: installer tooling and the project itself: never part of the lock
UNLOCKED = frozenset({"pip", "dvlm"})
HEADER = (
    "# The tested dependency versions: `make` installs with `pip install -c requirements.lock`.\n"
    "# Regenerate with `make lock` (fresh resolution, full test suite, written only when the tests pass).\n"
)


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-``, ``_`` and ``.`` become ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def default_lock_path() -> Path | None:
    """``requirements.lock`` of the checkout this dvlm was imported from; None for an installed wheel."""
    path = Path(__file__).resolve().parents[2] / LOCK_NAME
    return path if path.is_file() else None


def lock_hash(path: str | Path | None = None) -> str | None:
    """sha256 of the lock file's bytes (the identity of a locked environment); None when there is no lock."""
    path = Path(path) if path is not None else default_lock_path()
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_lock(path: str | Path) -> dict[str, str]:
    """``{normalized name: version}`` of a lock file; a line that is not ``name==version`` is an error."""
    path = Path(path)
    if not path.is_file():
        raise DvlmError(f"{path}: no dependency lock here. Run `make lock` to write one from a tested environment.")
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise DvlmError(f"{path}:{number}: {raw!r} is not a `name==version` pin. Regenerate with `make lock`.")
        pins[normalize(name.strip())] = version.strip()
    return pins


def installed_versions() -> dict[str, str]:
    """``{normalized name: version}`` of every distribution importable by this interpreter."""
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalize(name) not in out:
            out[normalize(name)] = dist.version
    return out


def required_by_dvlm(extras: tuple[str, ...]) -> list[str]:
    """Normalized names of dvlm's direct requirements for these extras (markers evaluated here)."""
    names = []
    for text in metadata.requires("dvlm") or []:
        requirement = Requirement(text)
        wanted = any(requirement.marker is None or requirement.marker.evaluate({"extra": extra})
                     for extra in ("", *extras))
        if wanted:
            names.append(normalize(requirement.name))
    return names


@dataclass(frozen=True)
class Drift:
    mismatched: list[tuple[str, str, str]]  # (name, locked, installed)
    unlocked: list[tuple[str, str]]  # (name, installed): installed but not in the lock
    missing: list[str]  # required by dvlm (with the extras) but not installed

    def __bool__(self) -> bool:
        return bool(self.mismatched or self.unlocked or self.missing)

    def message(self, lock: Path) -> str:
        lines = [f"the environment does not match the dependency lock {lock}:"]
        lines += [f"  {name}: locked {want}, installed {have}" for name, want, have in self.mismatched]
        lines += [f"  {name}: installed {have}, not in the lock" for name, have in self.unlocked]
        lines += [f"  {name}: required by dvlm, not installed" for name in self.missing]
        lines.append("Fix: `make clean && make test` reinstalls from the lock; if you meant to change a dependency, "
                     "run `make lock` to re-resolve, test and rewrite the lock.")
        return "\n".join(lines)


def check(lock: dict[str, str], installed: dict[str, str], required: list[str]) -> Drift:
    """Compare an environment with a lock; packages the lock lists but nobody installed are fine."""
    mismatched = sorted((name, lock[name], version) for name, version in installed.items()
                        if name in lock and lock[name] != version)
    unlocked = sorted((name, version) for name, version in installed.items()
                      if name not in lock and name not in UNLOCKED)
    missing = sorted(name for name in set(required) if name not in installed)
    return Drift(mismatched, unlocked, missing)


def freeze_text(installed: dict[str, str]) -> str:
    """The lock file text of an environment (sorted, header first)."""
    body = "".join(f"{name}=={version}\n" for name, version in sorted(installed.items()) if name not in UNLOCKED)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dvlm.core.environment_lock", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check_parser = sub.add_parser("check", help="fail (exit 1) when the environment differs from the lock")
    check_parser.add_argument("--lock", type=Path, default=None)
    check_parser.add_argument("--extras", default="", help="comma-separated dvlm extras that must be installed")
    freeze_parser = sub.add_parser("freeze", help="write the lock of this environment")
    freeze_parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "freeze":
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(freeze_text(installed_versions()))
        tmp.replace(args.out)
        print(f"wrote {args.out} (sha256 {lock_hash(args.out)})")
        return 0
    path = args.lock or default_lock_path()
    if path is None:
        print(f"error: no {LOCK_NAME} beside this dvlm checkout; pass --lock FILE", file=sys.stderr)
        return 2
    try:
        drift = check(read_lock(path), installed_versions(),
                      required_by_dvlm(tuple(e for e in args.extras.split(",") if e)))
    except DvlmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if drift:
        print(drift.message(path), file=sys.stderr)
        return 1
    print(f"environment matches {path} (sha256 {lock_hash(path)[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
