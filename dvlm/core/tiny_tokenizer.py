"""A tiny, dependency-light tokenizer for tests and synthetic tasks, saved in the Hugging Face format.

Real checkpoints bring their own tokenizer (``AutoTokenizer`` reads it from the folder). Tests and the
synthetic task need one that fits a tiny backbone: this one is character-level over ASCII (token id =
code point, 0..127; other characters become ``<|unk|>``) plus the special tokens of the backbone family
at the ids the backbone declares. ``save_tiny_tokenizer`` writes ``tokenizer.json`` (the ``tokenizers``
format) and ``tokenizer_config.json``, so ``transformers.AutoTokenizer`` loads it like a real one.

Special-token ids are never invented here for the roles a backbone declares (mask, eos, pad, eot, bos):
they come from the backbone's params; only the structural chat tokens (headers, ``<|im_start|>``) and
``<|unk|>`` take the lowest free ids from 128 up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

ASCII = 128

#: role -> token text, per backbone family (the published tokenizers' spellings).
ROLE_TOKENS = {
    "llada": {"mask_token_id": "<|mdm_mask|>", "eos_token_id": "<|endoftext|>", "eot_token_id": "<|eot_id|>",
              "bos_token_id": "<|startoftext|>"},
    "dream": {"mask_token_id": "<|mask|>", "eos_token_id": "<|endoftext|>", "eot_token_id": "<|im_end|>",
              "bos_token_id": "<|beginoftext|>"},
}
#: structural tokens each family's chat template writes.
CHAT_TOKENS = {"llada": ("<|start_header_id|>", "<|end_header_id|>"), "dream": ("<|im_start|>",)}
UNK = "<|unk|>"


def special_tokens_for(backbone: Any) -> dict[str, int]:
    """Token text -> id for a backbone's params (``LladaParams`` / ``DreamParams`` or any with the same
    ``*_token_id`` fields and ``kind``). Chat tokens and ``<|unk|>`` take the lowest free ids >= 128."""
    family = backbone.kind if backbone.kind in ROLE_TOKENS else "llada"
    tokens: dict[str, int] = {}
    for role, text in ROLE_TOKENS[family].items():
        value = getattr(backbone, role, None)
        if value is not None:
            tokens[text] = value
    if backbone.pad_token_id not in tokens.values():
        tokens["<|pad|>"] = backbone.pad_token_id
    free = (i for i in range(ASCII, backbone.vocab_size) if i not in tokens.values())
    for text in (*CHAT_TOKENS[family], UNK):
        try:
            tokens[text] = next(free)
        except StopIteration:
            raise ValueError(f"vocabulary of {backbone.vocab_size} has no free id for {text}; make it larger") from None
    return tokens


def build_tiny_tokenizer(special_tokens: Mapping[str, int]):
    """A ``tokenizers.Tokenizer``: ASCII characters at their code points plus ``special_tokens`` at their ids."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    clash = {text: i for text, i in special_tokens.items() if i < ASCII}
    if clash:
        raise ValueError(f"special token ids below {ASCII} are taken by ASCII characters: {clash}")
    if UNK not in special_tokens:
        raise ValueError(f"special_tokens must include {UNK} (characters outside ASCII map to it)")
    vocab = {chr(i): i for i in range(ASCII)}
    vocab.update(special_tokens)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tokenizer.decoder = decoders.Fuse()
    tokenizer.add_special_tokens([AddedToken(text, special=True, normalized=False) for text in special_tokens])
    return tokenizer


def save_tiny_tokenizer(folder: str | Path, special_tokens: Mapping[str, int], *, eos: str, pad: str | None = None,
                        bos: str | None = None, mask: str | None = None, model_max_length: int = 4096) -> Path:
    """Write ``tokenizer.json`` + ``tokenizer_config.json`` into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build_tiny_tokenizer(special_tokens).save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
        "eos_token": eos, "pad_token": pad or eos, "unk_token": UNK, "bos_token": bos, "mask_token": mask,
        "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {str(i): {"content": text, "special": True} for text, i in special_tokens.items()},
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def save_tiny_tokenizer_for(folder: str | Path, backbone: Any, model_max_length: int = 4096) -> Path:
    """``save_tiny_tokenizer`` with the special tokens of ``backbone`` (its params)."""
    tokens = special_tokens_for(backbone)
    by_id = {i: text for text, i in tokens.items()}
    return save_tiny_tokenizer(
        folder, tokens, eos=by_id[backbone.eos_token_id], pad=by_id[backbone.pad_token_id],
        bos=by_id.get(backbone.bos_token_id), mask=by_id[backbone.mask_token_id], model_max_length=model_max_length,
    )
