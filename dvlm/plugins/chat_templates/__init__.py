"""Built-in chat templates: conversation turns -> prompt text with ``<image>`` placeholders.

The text is then tokenised by the model's tokenizer, each ``<image>`` becoming the slot where that
image's features are spliced (``DiffusionVLM.prompt_batch`` in ``dvlm.core.vlm``).
"""

from __future__ import annotations

from typing import Literal

import dvlm
from dvlm.core.specs import ComponentParams

#: The system prompt of LaViDa (LLaDA and Dream) and LLaDA-V.
VLM_SYSTEM_PROMPT = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language."
)


class LladaTemplateParams(ComponentParams):
    """LLaDA / LLaDA-V / LaViDa-LLaDA: Llama-3 headers, ``<|eot_id|>`` after each turn, BOS first."""

    kind: Literal["llada"] = "llada"
    system_prompt: str | None = VLM_SYSTEM_PROMPT
    """System turn put first when the conversation has none; None for no system turn."""


class DreamTemplateParams(ComponentParams):
    """Dream / LaViDa-Dream: Qwen ChatML (``<|im_start|>role\\n ... <|im_end|>\\n``)."""

    kind: Literal["dream"] = "dream"
    system_prompt: str | None = VLM_SYSTEM_PROMPT
    """System turn put first when the conversation has none; None for no system turn."""


class PlainTemplateParams(ComponentParams):
    """LLaVA ``plain`` (stage-1 captioning): the user text (usually just ``<image>``), then the answer and
    ``\\n``; no roles, no system turn."""

    kind: Literal["plain"] = "plain"


class TokenizerTemplateParams(ComponentParams):
    """The tokenizer's own ``chat_template`` (text-only published folders: what their references render)."""

    kind: Literal["tokenizer"] = "tokenizer"


@dvlm.hookimpl
def dvlm_register_chat_templates(register):
    register("llada", "dvlm.plugins.chat_templates.templates:LladaTemplate", LladaTemplateParams)
    register("dream", "dvlm.plugins.chat_templates.templates:DreamTemplate", DreamTemplateParams)
    register("tokenizer", "dvlm.plugins.chat_templates.templates:TokenizerTemplate", TokenizerTemplateParams)
    register("plain", "dvlm.plugins.chat_templates.templates:PlainTemplate", PlainTemplateParams)
