"""Fitting a prompt into the context: cut text tokens, keep every image whole or drop it whole.

A prompt row is a list of *pieces*: text (a list of token ids) and images (``(image, token_count)``). The
model spec's ``truncation`` picks the side: ``right`` keeps the start (LLaVA's truncation, which can cut
the generation prompt), ``left`` keeps the end, after the row's *protected head* (BOS and the system
turn: the chat template's frame, which a model without it answers badly). Cutting an image's features in
half would splice half a grid into the prompt, so an image the cut reaches is dropped entirely.
"""

from __future__ import annotations

from typing import Any

from dvlm.core.errors import PromptError

Piece = Any
"""``list[int]`` (text ids) or ``tuple[image, int]`` (an image and its token count)."""


def piece_length(piece: Piece) -> int:
    return len(piece) if isinstance(piece, list) else piece[1]


def _units(pieces: list[Piece]) -> list[Piece]:
    """One unit per text token (``[id]``) and one per image (kept whole)."""
    return [unit for piece in pieces for unit in ([[t] for t in piece] if isinstance(piece, list) else [piece])]


def _merge(units: list[Piece]) -> list[Piece]:
    """Adjacent text units back into text pieces; rows always start and end with a text piece."""
    pieces: list[Piece] = [[]]
    for unit in units:
        if isinstance(unit, list):
            if not isinstance(pieces[-1], list):
                pieces.append([])
            pieces[-1] += unit
        else:
            pieces.append(unit)
    if not isinstance(pieces[-1], list):
        pieces.append([])
    return pieces


def truncate(pieces: list[Piece], budget: int, side: str, protected: int = 0) -> list[Piece]:
    """The row's pieces cut to at most ``budget`` tokens from ``side`` ("left" or "right"); with "left" the
    first ``protected`` text tokens always stay. Images are kept or dropped whole."""
    if sum(map(piece_length, pieces)) <= budget:
        return pieces
    units = _units(pieces)
    if side == "right":
        kept, used = [], 0
        for unit in units:
            if used + piece_length(unit) > budget:
                break
            kept.append(unit)
            used += piece_length(unit)
        return _merge(kept)
    head, rest = units[:protected], units[protected:]
    room = budget - len(head)
    if room < 0:
        raise PromptError(
            f"the prompt's BOS and system turn alone take {len(head)} tokens, more than the {budget} the context "
            "leaves beside the answer; shorten the system prompt or lower gen_length"
        )
    kept, used = [], 0
    for unit in reversed(rest):
        if used + piece_length(unit) > room:
            break
        kept.append(unit)
        used += piece_length(unit)
    return _merge(head + kept[::-1])
