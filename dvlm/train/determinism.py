"""Seeds and RNG state: every random draw of a run is a pure function of (seed, what, step, index).

Deriving each generator from named parts, instead of advancing one global stream, is what makes a
run independent of how its work is split: a micro-batch gets the same masks and the same data
augmentation whether it runs in process 0 of 2 or as the second accumulation step of 1, and a
resumed run draws exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import random

import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts, e.g. ``derive_seed(seed, "mask", step, micro)``."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*parts: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(*parts)``."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def python_rng(*parts: object) -> random.Random:
    return random.Random(derive_seed(*parts))


def rng_state() -> dict:
    """The global RNG states (torch CPU, CUDA, python) for a checkpoint: tensors and JSON-able values."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
