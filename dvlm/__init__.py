"""dvlm: a plugin-based PyTorch framework for masked-diffusion vision-language models.

The public API (kept stable; see DESIGN.md section 6). Everything except ``hookimpl`` is imported
on first use, so ``import dvlm`` stays light: no torch model code, no transformers, timm or open_clip.
"""

from __future__ import annotations

import importlib
from typing import Any

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("dvlm")
"""Marker for plugin hook implementations: ``@dvlm.hookimpl def dvlm_register_schedules(register): ...``"""

_LAZY = {
    "registry": "dvlm.core.plugins:get_registry",
    "load_spec": "dvlm.core.specs:load_spec",
    "parse_spec": "dvlm.core.specs:parse_spec",
    "spec_hash": "dvlm.core.specs:spec_hash",
    "Spec": "dvlm.core.specs:Spec",
    "ComponentParams": "dvlm.core.specs:ComponentParams",
    "Family": "dvlm.core.specs:Family",
    "ModelSpec": "dvlm.core.specs:ModelSpec",
    "DvlmError": "dvlm.core.errors:DvlmError",
    "load_pretrained": "dvlm.core.checkpoint:load_pretrained",
    "generate": "dvlm.core.generation:generate",
    "score": "dvlm.core.likelihood:score",
    "build": "dvlm.core.vlm:build",
}

__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dvlm' has no attribute '{name}'")
    module, _, attr = _LAZY[name].partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
