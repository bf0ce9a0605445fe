"""Built-in checkpoint layouts: the published folder formats dvlm reads and writes.

| kind | folder | ``config.json`` |
|---|---|---|
| ``dvlm`` | dvlm's own checkpoint | (``spec.json``) |
| ``llada`` | LLaDA-8B-Base / -Instruct, OLMo names | ``model_type: llada`` with ``d_model`` |
| ``llada-llama`` | LLaDA in LLaDA-V's Llama names | ``model_type: llada`` with ``hidden_size`` |
| ``dream`` | Dream-v0-Base / -Instruct-7B | ``model_type: Dream`` |
| ``lavida-llada`` | LaViDa-LLaDA (LLaVA names, OLMo backbone) | ``model_type: llava_llada`` with ``d_model`` |
| ``llada-v`` | LLaDA-V (LLaVA names, Llama backbone) | ``model_type: llava_llada`` with ``hidden_size`` |
| ``lavida-dream`` | LaViDa-Dream (LLaVA names, Qwen2 backbone) | ``model_type: llava_dream`` |

Only light imports here (pydantic): the layouts are built lazily from ``layouts.py``.
"""

from __future__ import annotations

from typing import Literal

import dvlm
from dvlm.core.specs import ComponentParams


class DvlmLayoutParams(ComponentParams):
    """dvlm's own checkpoint: ``spec.json`` + ``model.safetensors`` + tokenizer files."""

    kind: Literal["dvlm"] = "dvlm"


class LladaLayoutParams(ComponentParams):
    """LLaDA-8B in OLMo names (``model.transformer.blocks.N.*``)."""

    kind: Literal["llada"] = "llada"


class LladaLlamaLayoutParams(ComponentParams):
    """LLaDA in LLaDA-V's Llama names (``model.layers.N.self_attn.*``)."""

    kind: Literal["llada-llama"] = "llada-llama"


class DreamLayoutParams(ComponentParams):
    """Dream-7B (Qwen2 names with q/k/v biases)."""

    kind: Literal["dream"] = "dream"


class LavidaLladaLayoutParams(ComponentParams):
    """LaViDa-LLaDA: LLaVA names, SigLIP tower, OLMo backbone."""

    kind: Literal["lavida-llada"] = "lavida-llada"


class LladaVLayoutParams(ComponentParams):
    """LLaDA-V: LLaVA names, SigLIP tower, Llama-named LLaDA backbone."""

    kind: Literal["llada-v"] = "llada-v"


class LavidaDreamLayoutParams(ComponentParams):
    """LaViDa-Dream: LLaVA names, SigLIP tower, Dream backbone."""

    kind: Literal["lavida-dream"] = "lavida-dream"


@dvlm.hookimpl
def dvlm_register_checkpoint_layouts(register):
    module = "dvlm.plugins.checkpoint_layouts.layouts"
    register("dvlm", f"{module}:dvlm_layout", DvlmLayoutParams)
    register("llada", f"{module}:llada_layout", LladaLayoutParams)
    register("llada-llama", f"{module}:llada_llama_layout", LladaLlamaLayoutParams)
    register("dream", f"{module}:dream_layout", DreamLayoutParams)
    register("lavida-llada", f"{module}:lavida_llada_layout", LavidaLladaLayoutParams)
    register("llada-v", f"{module}:llada_v_layout", LladaVLayoutParams)
    register("lavida-dream", f"{module}:lavida_dream_layout", LavidaDreamLayoutParams)
