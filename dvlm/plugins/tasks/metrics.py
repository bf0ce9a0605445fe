"""Answer metrics, per sample: exact match after normalisation, and CIDEr-D through pycocoevalcap's scorer.

Each metric returns one score per prediction (the task's metric is their mean), so a report can put a
paired bootstrap interval on the difference between two decoders over the same questions.

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


def exact_match(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """1.0 where a prediction equals (after ``normalize``) one of its references, else 0.0."""
    return [float(normalize(p) in {normalize(r) for r in refs}) for p, refs in zip(predictions, references)]


def cider(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """CIDEr-D of each prediction; their mean is the corpus CIDEr-D (x100 is not applied: COCO reports e.g.
    1.102 as 110.2). Document frequencies come from all references of the call, as in COCO."""
    from pycocoevalcap.cider.cider import Cider

    gts = {i: [normalize(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [normalize(p) or "<empty>"] for i, p in enumerate(predictions)}
    _, scores = Cider().compute_score(gts, res)
    return [float(s) for s in scores]
