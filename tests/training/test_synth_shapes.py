"""The synthetic shapes dataset: deterministic by seed, split, and its answers match its pixels."""

import json

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from dvlm.data.synth_cli import data_app
from dvlm.data.synth_shapes import COLOURS, COUNT_WORDS, POSITIONS, write_synth_shapes


def run_cli(*args):
    app = typer.Typer()
    app.add_typer(data_app, name="data")
    app.command("noop")(lambda: None)
    return CliRunner().invoke(app, ["data", "synth-shapes", *args])


def tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path):
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        result = run_cli("--out", str(tmp_path / name), "--n", "12", "--seed", str(seed))
        assert result.exit_code == 0, result.output
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert tree(tmp_path / "a") != tree(tmp_path / "c")


def test_splits_are_disjoint_llava_records(tmp_path):
    counts = write_synth_shapes(tmp_path, n=20, seed=0)
    assert counts == {"train": 64, "val": 8, "test": 8}  # 16/2/2 images x 4 questions
    images = {}
    for split in counts:
        rows = json.loads((tmp_path / f"{split}.json").read_text())
        captions = json.loads((tmp_path / f"{split}_captions.json").read_text())
        images[split] = {r["image"] for r in rows}
        assert images[split] == {r["image"] for r in captions}
        assert json.loads((tmp_path / f"{split}_all.json").read_text()) == rows + captions
        for row in rows + captions:
            human, gpt = row["conversations"]
            assert human["from"] == "human" and human["value"].startswith("<image>\n") and gpt["from"] == "gpt"
            assert gpt["value"] and (tmp_path / row["image"]).is_file()
    assert not (images["train"] & images["val"]) and not (images["val"] & images["test"])


def _scene_from_pixels(path):
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    foreground = np.abs(pixels - 245).sum(-1) > 60  # [H, W]
    mean = pixels[foreground].mean(0)
    colour = min(COLOURS, key=lambda c: np.abs(np.array(COLOURS[c]) - mean).sum())
    column = int(np.nonzero(foreground)[1].mean() * 3 // pixels.shape[1])
    rows = foreground.any(1).astype(int)
    count = int(((rows[1:] == 1) & (rows[:-1] == 0)).sum() + rows[0])  # vertical runs of shape rows
    return colour, POSITIONS[column], COUNT_WORDS[count - 1]


def test_answers_match_the_pixels(tmp_path):
    write_synth_shapes(tmp_path, n=30, seed=5)
    rows = json.loads((tmp_path / "train.json").read_text())
    answers = {}
    for row in rows:
        answers.setdefault(row["image"], {})[row["id"].split("-")[1]] = row["conversations"][1]["value"]
    for image, truth in answers.items():
        assert _scene_from_pixels(tmp_path / image) == (truth["colour"], truth["position"], truth["count"])


def test_too_few_images_is_refused(tmp_path):
    result = run_cli("--out", str(tmp_path), "--n", "2")
    assert result.exit_code != 0
    with pytest.raises(ValueError, match="at least 3"):
        write_synth_shapes(tmp_path, n=2, seed=0)
