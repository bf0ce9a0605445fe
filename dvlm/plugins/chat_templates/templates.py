"""Chat templates: a conversation -> the prompt string the backbone was trained on.

Each template reproduces what the reference renders with the backbone tokenizer's
``apply_chat_template(..., add_generation_prompt=True)`` (LaViDa ``conv_llava_llada`` / ``conv_dream``,
LLaDA-V ``llava_llada``, LLaVA ``plain``). Special tokens appear as their text and are recognised by
the tokenizer; BOS is the tokenizer's own BOS text (omitted when it has none).

A conversation is a string (one user turn) or a list of ``{"role", "content"}`` messages with roles
``system``, ``user``, ``assistant``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from dvlm.core.errors import PromptError

ROLES = ("system", "user", "assistant")


def normalize(conversation: str | Sequence[Mapping[str, Any]], system_prompt: str | None) -> list[dict[str, str]]:
    """A string or message list -> validated messages, with the default system turn first if none is given."""
    messages = [{"role": "user", "content": conversation}] if isinstance(conversation, str) else list(conversation)
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ROLES or not isinstance(
                message.get("content"), str):
            raise PromptError(
                f"message {i} of the conversation must be {{'role': one of {ROLES}, 'content': str}}, got {message!r}"
            )
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    if system_prompt is not None and (not messages or messages[0]["role"] != "system"):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


class LladaTemplate:
    """Llama-3 headers: ``<|start_header_id|>role<|end_header_id|>\\n\\n{content}<|eot_id|>``."""

    end_of_turn = "<|eot_id|>"

    def __init__(self, params) -> None:
        self.params = params

    def render(self, conversation, *, bos_token: str | None = None, add_generation_prompt: bool = True,
               tokenizer: Any = None) -> str:
        text = bos_token or ""
        for m in normalize(conversation, self.params.system_prompt):
            text += f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}{self.end_of_turn}"
        if add_generation_prompt:
            text += "<|start_header_id|>assistant<|end_header_id|>\n\n"
        return text


class DreamTemplate:
    """Qwen ChatML: ``<|im_start|>role\\n{content}<|im_end|>\\n``."""

    end_of_turn = "<|im_end|>"

    def __init__(self, params) -> None:
        self.params = params

    def render(self, conversation, *, bos_token: str | None = None, add_generation_prompt: bool = True,
               tokenizer: Any = None) -> str:
        text = ""
        for m in normalize(conversation, self.params.system_prompt):
            text += f"<|im_start|>{m['role']}\n{m['content']}{self.end_of_turn}\n"
        if add_generation_prompt:
            text += "<|im_start|>assistant\n"
        return text


class TokenizerTemplate:
    """The tokenizer's own ``chat_template`` (Jinja, from its ``tokenizer_config.json``), rendered by
    transformers' ``apply_chat_template``: what LLaDA's ``generate.py`` / ``chat.py`` and Dream's demo do with
    their Instruct models (LLaDA: BOS + Llama-3 headers, no system turn; Dream: ChatML with the default
    "You are a helpful assistant." system turn)."""

    end_of_turn = ""

    def __init__(self, params) -> None:
        self.params = params

    def render(self, conversation, *, bos_token: str | None = None, add_generation_prompt: bool = True,
               tokenizer: Any = None) -> str:
        if getattr(tokenizer, "chat_template", None) is None:
            raise PromptError("chat_template 'tokenizer' renders the tokenizer's own chat_template, but the model's "
                              "tokenizer has none; use a dvlm template (llada, dream, plain) or raw=True")
        return tokenizer.apply_chat_template(normalize(conversation, None), tokenize=False,
                                             add_generation_prompt=add_generation_prompt)


class PlainTemplate:
    """LLaVA ``plain``: user text as is, an assistant turn is its text followed by ``\\n``."""

    end_of_turn = "\n"

    def __init__(self, params) -> None:
        self.params = params

    def render(self, conversation, *, bos_token: str | None = None, add_generation_prompt: bool = True,
               tokenizer: Any = None) -> str:
        parts = []
        for m in normalize(conversation, None):
            if m["role"] == "user":
                parts.append(m["content"])
            elif m["role"] == "assistant":
                parts.append(m["content"] + self.end_of_turn)
        return "".join(parts)
