"""Built-in projectors: vision features -> backbone embeddings (LLaVA's ``mm_projector``)."""

from __future__ import annotations

from typing import Literal

import dvlm
from dvlm.core.specs import ComponentParams


class Mlp2xGeluParams(ComponentParams):
    """LLaVA ``mlp2x_gelu``: ``Linear(in, out) -> GELU -> Linear(out, out)``, keys ``0.*`` and ``2.*``."""

    kind: Literal["mlp2x_gelu"] = "mlp2x_gelu"


class LinearParams(ComponentParams):
    """LLaVA ``linear``: one ``Linear(in, out)``."""

    kind: Literal["linear"] = "linear"


@dvlm.hookimpl
def dvlm_register_projectors(register):
    register("mlp2x_gelu", "dvlm.plugins.projectors.mlp:build_mlp2x_gelu", Mlp2xGeluParams)
    register("linear", "dvlm.plugins.projectors.mlp:build_linear", LinearParams)
