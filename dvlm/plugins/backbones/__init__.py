"""Built-in diffusion language backbones: LLaDA and Dream.

Registration imports only the pydantic params models; the torch model code is referenced by
lazy ``"module:attr"`` factories and imported on first build.
"""

from __future__ import annotations

import dvlm
from dvlm.plugins.backbones.params import DreamParams, LladaParams


@dvlm.hookimpl
def dvlm_register_backbones(register):
    register("llada", "dvlm.plugins.backbones.llada:build_llada", LladaParams)
    register("dream", "dvlm.plugins.backbones.dream:build_dream", DreamParams)
