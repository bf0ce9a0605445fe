"""Code and machine provenance recorded beside each result row (never inside the spec hash)."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from dvlm.core.environment_lock import lock_hash

LIBRARIES = ("dvlm", "torch", "transformers", "timm", "open_clip_torch", "pydantic", "pluggy")


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """The commit and whether the working tree differs from it; nulls outside a git checkout."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if sha else None
    return {"git_sha": sha, "git_dirty": None if status is None else bool(status)}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def plugin_versions() -> list[dict[str, str]]:
    from dvlm.core.plugins import get_registry

    return [
        {"plugin": name, "distribution": origin.distribution, "version": origin.version}
        for name, origin in sorted(get_registry().plugins.items())
    ]


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpus": [],
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpus"] = [
                {"name": torch.cuda.get_device_name(i),
                 "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
                for i in range(torch.cuda.device_count())
            ]
            info["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return info


def provenance(cwd: str | Path | None = None) -> dict[str, Any]:
    """Everything a result row records about the code and the machine that produced it."""
    return {**git_state(cwd), "lock_sha256": lock_hash(), "versions": versions(), "plugins": plugin_versions(),
            "hardware": hardware()}
