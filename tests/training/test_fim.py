"""LaViDa-FIM augmentation follows the documented distribution (lavida.md §4.2)."""

import random
from collections import Counter

import pytest

from dvlm.plugins.masking.fim import FimParams, fim_augment

FIM, FILLER = 1000, 1001


def inserts(pieces):
    """(word boundary, filler count) of each inserted marker, recovered from the pieces."""
    out, words = [], 0
    for piece in pieces:
        if isinstance(piece, tuple):
            assert piece[-1] == FIM and set(piece[:-1]) <= {FILLER}
            out.append((words, len(piece) - 1))
        else:
            words += len(piece.split())
    return out


def restore(pieces):
    return " ".join(" ".join(p for p in pieces if isinstance(p, str)).split())


def test_inserts_follow_the_documented_distribution():
    params = FimParams()
    rng = random.Random(0)
    text = " ".join(f"w{i}" for i in range(30))  # 30 words: N = min(max(5, 3), 10) = 5
    trials, applied, counts, fillers = 6000, 0, Counter(), Counter()
    for _ in range(trials):
        pieces = fim_augment(text, rng, FIM, FILLER, params)
        assert restore(pieces) == text  # the answer's own words are untouched
        found = inserts(pieces)
        if found:
            applied += 1
            positions = [p for p, _ in found]
            assert len(set(positions)) == len(positions) and all(1 <= p <= 29 for p in positions)
            counts[len(found)] += 1
            fillers.update(k for _, k in found)
    assert applied / trials == pytest.approx(0.8, abs=0.02)
    assert sorted(counts) == [1, 2, 3, 4, 5]
    assert all(c / applied == pytest.approx(1 / 5, abs=0.025) for c in counts.values()), counts
    total = sum(fillers.values())
    assert sorted(fillers) == [0, 1, 2, 3, 4, 5]
    assert all(c / total == pytest.approx(1 / 6, abs=0.02) for c in fillers.values()), fillers


@pytest.mark.parametrize("n_words, bound", [(4, 3), (60, 6), (150, 10)])
def test_insert_count_bound(n_words, bound):
    """N = min(max(5, ⌊0.1·n⌋), 10), and never more than the n-1 word boundaries."""
    text = " ".join(["x"] * n_words)
    rng = random.Random(1)
    seen = {len(inserts(fim_augment(text, rng, FIM, FILLER, FimParams(probability=1.0)))) for _ in range(3000)}
    assert seen == set(range(1, bound + 1))


def test_short_answers_are_never_augmented():
    rng = random.Random(2)
    for text in ["a", "a b", "a b c"]:
        assert all(fim_augment(text, rng, FIM, FILLER, FimParams(probability=1.0)) == [text] for _ in range(50))


def test_markers_are_separate_words():
    pieces = fim_augment("the red circle is left", random.Random(4), FIM, FILLER, FimParams(probability=1.0))
    for before, marker, after in zip(pieces, pieces[1:], pieces[2:]):
        if isinstance(marker, tuple):
            assert before.endswith(" ") and after.startswith(" ")
