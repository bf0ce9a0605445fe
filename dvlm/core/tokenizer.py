"""Tokenizers: a checkpoint's own tokenizer from its folder, and prompts with ``<image>`` slots.

``load_tokenizer(folder)`` never runs code from the folder (no ``trust_remote_code``):

- ``tokenizer.json``: ``PreTrainedTokenizerFast`` with the folder's ``tokenizer_config.json`` (special tokens,
  ``chat_template``), whatever class the config names (LLaDA names a remote-code class);
- ``vocab.json`` + ``merges.txt`` without ``tokenizer.json`` (Dream's remote-code ``DreamTokenizer``): the
  byte-level BPE is built here from those files plus ``added_tokens.json`` / ``added_tokens_decoder``, with
  Qwen2's pre-tokenisation when the config names a Qwen2 or Dream tokenizer (Dream's tokenizer is Qwen2's);
- anything else (e.g. ``tokenizer.model``): ``AutoTokenizer`` with ``trust_remote_code=False``.

``split_on_images(tokenizer, text, text_after_image)`` tokenises the text between ``<image>`` placeholders
chunk by chunk, without special tokens added. ``text_after_image="keep"`` keeps every token (what training
sees). ``"llava_inference"`` reproduces LLaVA's ``tokenizer_image_token`` at inference, which published LaViDa
and LLaDA-V scores were measured with: when the prompt starts with BOS it drops the first token of every chunk
after the first (it assumes each chunk starts with an automatic BOS, which LLaDA's tokenizer does not add), so
the ``\\n`` after ``<image>`` is lost (backbones.md section 5.3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dvlm.core.errors import CheckpointError

IMAGE_PLACEHOLDER = "<image>"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
"""A folder holds a tokenizer when it has one of these (``tokenizer_config.json`` alone only names tokens)."""
#: Qwen2's pre-tokenisation (Dream's ``tokenization_dream.py`` is a copy of Qwen2's tokenizer).
QWEN2_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
               r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
SPECIAL_FIELDS = ("bos_token", "eos_token", "pad_token", "unk_token", "mask_token")


def has_tokenizer(folder: str | Path) -> bool:
    return any((Path(folder) / name).is_file() for name in TOKENIZER_FILES)


def _text(value: Any) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def _chat_template(folder: Path, config: dict[str, Any]) -> str | None:
    jinja = folder / "chat_template.jinja"
    return jinja.read_text() if jinja.is_file() else config.get("chat_template")


def _byte_level_bpe(folder: Path, config: dict[str, Any]) -> Any:
    """A fast tokenizer from ``vocab.json`` + ``merges.txt`` + the added tokens, ids checked against the files."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab = json.loads((folder / "vocab.json").read_text())
    merges = [tuple(line.split(" ")) for line in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
              if line and not line.startswith("#version")]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tokenizer.decoder = decoders.ByteLevel()
    if any(name in str(config.get("tokenizer_class", "")) for name in ("Qwen2", "Dream")):
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:  # GPT-2's byte-level BPE
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    added = {text: int(i) for text, i in json.loads((folder / "added_tokens.json").read_text()).items()} if (
        folder / "added_tokens.json").is_file() else {}
    decoder = config.get("added_tokens_decoder", {})
    added.update({entry["content"]: int(i) for i, entry in decoder.items()})
    special = {entry["content"] for entry in decoder.values() if entry.get("special", True)} | set(added)
    for text, token_id in sorted(added.items(), key=lambda item: item[1]):
        tokenizer.add_tokens([AddedToken(text, special=text in special, normalized=False)])
        if tokenizer.token_to_id(text) != token_id:
            raise CheckpointError(f"{folder}: added token {text!r} should have id {token_id} but the vocabulary "
                                  f"gives it {tokenizer.token_to_id(text)}; the tokenizer files do not agree")
    return tokenizer


def load_tokenizer(folder: str | Path) -> Any:
    """The tokenizer saved in ``folder`` (a transformers tokenizer), built without running the folder's code."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = Path(folder)
    if not has_tokenizer(folder):
        raise CheckpointError(f"{folder}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); copy the model's "
                              f"tokenizer into this folder or set `tokenizer:` in the model spec.")
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    specials = {k: _text(config[k]) for k in SPECIAL_FIELDS if _text(config.get(k)) is not None}
    common = dict(chat_template=_chat_template(folder, config), model_max_length=config.get("model_max_length"),
                  clean_up_tokenization_spaces=config.get("clean_up_tokenization_spaces", False), **specials)
    common = {k: v for k, v in common.items() if v is not None}
    if (folder / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), **common)
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return PreTrainedTokenizerFast(tokenizer_object=_byte_level_bpe(folder, config), **common)
    try:
        return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except Exception as err:  # remote-code tokenizers, unknown classes, broken files
        raise CheckpointError(f"{folder}: the tokenizer cannot be loaded without running its own code ({err}); "
                              f"save a tokenizer.json (or vocab.json + merges.txt) next to it.") from None


def encode(tokenizer: Any, text: str) -> list[int]:
    """Ids of ``text``, no special tokens added (those the text spells out are recognised)."""
    if not text:
        return []
    encoded = tokenizer.encode(text, add_special_tokens=False)
    return list(getattr(encoded, "ids", encoded))


def split_on_images(tokenizer: Any, text: str, text_after_image: str = "keep") -> list[list[int]]:
    """Token ids of the text between ``<image>`` placeholders: ``k`` placeholders give ``k + 1`` chunks
    (``text_after_image``: see the module docstring)."""
    chunks = [encode(tokenizer, chunk) for chunk in text.split(IMAGE_PLACEHOLDER)]
    bos = getattr(tokenizer, "bos_token_id", None)
    if text_after_image == "llava_inference" and bos is not None and chunks[0][:1] == [bos]:
        chunks = [chunks[0], *(chunk[1:] for chunk in chunks[1:])]
    return chunks
