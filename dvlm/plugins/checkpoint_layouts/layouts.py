"""The factories of the built-in checkpoint layouts (``params -> CheckpointLayout``)."""

from __future__ import annotations

from dvlm.plugins.checkpoint_layouts.dream import DREAM
from dvlm.plugins.checkpoint_layouts.dvlm_checkpoint import DvlmCheckpointLayout
from dvlm.plugins.checkpoint_layouts.llada import LLAMA, OLMO
from dvlm.plugins.checkpoint_layouts.llava import LlavaLayout
from dvlm.plugins.checkpoint_layouts.text import TextLayout


def dvlm_layout(params) -> DvlmCheckpointLayout:
    return DvlmCheckpointLayout(params)


def llada_layout(params) -> TextLayout:
    return TextLayout("llada", "LLaDA-8B, OLMo names (config.json: model_type 'llada' with d_model; tensors "
                               "model.transformer.*)", OLMO)


def llada_llama_layout(params) -> TextLayout:
    return TextLayout("llada-llama", "LLaDA in LLaDA-V's Llama names (config.json: model_type 'llada' with "
                                     "hidden_size; tensors model.layers.*, lm_head)", LLAMA)


def dream_layout(params) -> TextLayout:
    return TextLayout("dream", "Dream-7B (config.json: model_type 'Dream'; tensors model.layers.* with q/k/v "
                               "biases, lm_head)", DREAM)


def lavida_llada_layout(params) -> LlavaLayout:
    return LlavaLayout("lavida-llada", "LaViDa-LLaDA (config.json: model_type 'llava_llada' with d_model; "
                                       "LLaVA tensor names)", "llava_llada", OLMO)


def llada_v_layout(params) -> LlavaLayout:
    return LlavaLayout("llada-v", "LLaDA-V (config.json: model_type 'llava_llada' with hidden_size; LLaVA "
                                  "tensor names)", "llava_llada", LLAMA)


def lavida_dream_layout(params) -> LlavaLayout:
    return LlavaLayout("lavida-dream", "LaViDa-Dream (config.json: model_type 'llava_dream'; LLaVA tensor names)",
                       "llava_dream", DREAM)
