"""LaViDa-FIM infilling augmentation: ``[S]×k [FIM]`` words inserted at word boundaries of an answer.

LaViDa (``train.py`` + ``infill_utils.py``, lavida.md §4.2) trains its infilling model on answers
in which, with probability 0.8 when the answer has more than three words, n ~ U{1..N} new words
``[S]×k [FIM]`` (k ~ U{0..5}) are inserted at distinct word boundaries, with
N = min(max(5, ⌊0.1·words⌋), 10). ``[S]`` (the filler) is an ordinary target: the model learns that
a masked span before ``[FIM]`` is "content, then fillers", which lets inference fill spans of
unknown length. ``[FIM]`` is visible and never a target: the data pipeline labels it
``IGNORE_INDEX``, and masking strategies never mask a non-target.

This runs on text, before tokenization, and returns pieces: text and runs of token ids. Tokenizing
the text pieces one by one is what LaViDa's tokenizer does too: added special tokens split the text
before the pre-tokenizer runs. The ids come from the backbone's special tokens
(``extra["fim"]``, ``extra["fim_filler"]``), never literals.
"""

from __future__ import annotations

import random
from typing import Union

from pydantic import Field

from dvlm.core.specs import Spec

Piece = Union[str, tuple[int, ...]]
"""Answer text, or a run of token ids inserted verbatim (``(filler,)*k + (fim,)``)."""


class FimParams(Spec):
    """LaViDa-FIM augmentation of assistant answers; the defaults are LaViDa's."""

    probability: float = Field(0.8, ge=0, le=1)
    """Chance that an eligible answer is augmented."""
    min_words: int = Field(4, ge=2)
    """Answers with fewer space-separated words are left alone (LaViDa: more than 3)."""
    insert_fraction: float = Field(0.1, ge=0, le=1)
    """N = min(max(insert_floor, ⌊insert_fraction·words⌋), insert_cap) bounds the insert count."""
    insert_floor: int = Field(5, ge=1)
    """Lower bound of N."""
    insert_cap: int = Field(10, ge=1)
    """Upper bound of N."""
    max_fillers: int = Field(5, ge=0)
    """k ~ U{0..max_fillers} filler tokens before each ``[FIM]``."""


def fim_augment(text: str, rng: random.Random, fim_id: int, filler_id: int, params: FimParams) -> list[Piece]:
    """Split ``text`` on single spaces and insert ``[S]×k [FIM]`` words; ``[text]`` when not augmented.

    Each inserted marker is its own space-separated word, as in LaViDa's ``' '.join(words)``: the
    text before it ends with a space and the text after it starts with one.
    """
    words = text.split(" ")
    if len(words) < params.min_words or rng.random() >= params.probability:
        return [text]
    bound = min(max(params.insert_floor, int(params.insert_fraction * len(words))), params.insert_cap)
    count = min(rng.randint(1, bound), len(words) - 1)
    positions = sorted(rng.sample(range(1, len(words)), count))
    pieces: list[Piece] = []
    start = 0
    for position in positions:
        before = " ".join(words[start:position])
        pieces.append((" " if start else "") + before + " ")
        pieces.append((filler_id,) * rng.randint(0, params.max_fillers) + (fim_id,))
        start = position
    pieces.append(" " + " ".join(words[start:]))
    return pieces
