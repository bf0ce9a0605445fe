"""Tokenizers: a checkpoint's own tokenizer from its folder, and prompts with ``<image>`` slots.

``load_tokenizer(folder)`` uses ``transformers.AutoTokenizer`` without ``trust_remote_code`` (no code from
the folder runs); a folder whose tokenizer needs custom code but ships ``tokenizer.json`` is read through
``PreTrainedTokenizerFast`` with the special tokens of its ``tokenizer_config.json``.

``split_on_images(tokenizer, text)`` tokenises the text between ``<image>`` placeholders chunk by chunk,
without special tokens added. LLaVA's ``tokenizer_image_token`` drops the first token of every chunk after
the first (it assumes each chunk starts with an automatic BOS, which LLaDA's tokenizer does not add), so
at inference the reference loses the ``\\n`` after ``<image>``; its training code keeps it. dvlm keeps it
everywhere, on purpose: training and inference then see the same sequence (backbones.md section 5.3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dvlm.core.errors import CheckpointError

IMAGE_PLACEHOLDER = "<image>"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def has_tokenizer(folder: str | Path) -> bool:
    return any((Path(folder) / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(folder: str | Path) -> Any:
    """The tokenizer saved in ``folder`` (a transformers tokenizer)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = Path(folder)
    if not has_tokenizer(folder):
        raise CheckpointError(f"{folder}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); copy the model's "
                              f"tokenizer into this folder or set `tokenizer:` in the model spec.")
    try:
        return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except Exception as err:  # remote-code tokenizers, unknown classes, broken files
        if not (folder / "tokenizer.json").is_file():
            raise CheckpointError(f"{folder}: the tokenizer cannot be loaded without running its own code "
                                  f"({err}); save a tokenizer.json next to it.") from None
        import json

        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        specials = {k: v for k, v in config.items() if k.endswith("_token") and isinstance(v, str)}
        return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), **specials)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Ids of ``text``, no special tokens added (those the text spells out are recognised)."""
    if not text:
        return []
    encoded = tokenizer.encode(text, add_special_tokens=False)
    return list(getattr(encoded, "ids", encoded))


def split_on_images(tokenizer: Any, text: str) -> list[list[int]]:
    """Token ids of the text between ``<image>`` placeholders: ``k`` placeholders give ``k + 1`` chunks."""
    return [encode(tokenizer, chunk) for chunk in text.split(IMAGE_PLACEHOLDER)]
