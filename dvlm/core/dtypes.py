"""dtype names used in specs and configs, and building modules directly in a dtype."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    """``"bfloat16"`` -> ``torch.bfloat16`` (the names a spec's ``dtype`` field accepts)."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unsupported dtype '{name}'; use one of {', '.join(DTYPES)}") from None


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Create floating-point parameters in ``dtype`` (no fp32 copy first, which an 8B model cannot afford)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
