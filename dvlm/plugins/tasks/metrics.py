"""Answer metrics: exact match after normalisation, and CIDEr-D through pycocoevalcap's scorer.

pycocoevalcap's ``Cider`` expects pre-tokenised strings (the COCO toolkit tokenises with a Java PTB
tokenizer); here answers are lower-cased, stripped of punctuation and split on white space in Python,
so no Java is needed. CIDEr's document frequencies come from the evaluated references, as in COCO.
"""

from __future__ import annotations

import re
import string
from typing import Sequence

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize(text: str) -> str:
    """Lower case, punctuation removed, white space collapsed."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def exact_match(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Fraction of predictions equal (after ``normalize``) to one of their references."""
    hits = sum(normalize(p) in {normalize(r) for r in refs} for p, refs in zip(predictions, references))
    return hits / max(len(predictions), 1)


def cider(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus CIDEr-D (x100 is not applied: COCO reports e.g. 1.102 as 110.2)."""
    from pycocoevalcap.cider.cider import Cider

    gts = {i: [normalize(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [normalize(p) or "<empty>"] for i, p in enumerate(predictions)}
    score, _ = Cider().compute_score(gts, res)
    return float(score)
