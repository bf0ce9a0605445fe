"""The synthetic shapes dataset: coloured shapes on a plain canvas, with one-word answers.

Each image holds 1-3 copies of one shape kind in one colour, stacked in one column (left, center
or right). Every image gets four single-turn questions (shape, colour, position, count), one
answer word each, and a caption. Small, fast to generate and learnable by a tiny model, it is the
built-in dataset of the tests and of the main job.

Layout written under ``out``::

    images/{index:06d}.png
    {split}.json            LLaVA-format question/answer records (split = train, val, test)
    {split}_captions.json   LLaVA-format captioning records (stage-1 alignment)
    {split}_all.json        both: the questions and the captions (to train one model for both tasks)
    meta.json               seed, sizes and the vocabulary of every answer and question word

Everything is a function of ``(n, seed, size)``: the same arguments write byte-identical files.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

KINDS = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
POSITIONS = ("left", "center", "right")
COUNT_WORDS = ("one", "two", "three")
QUESTIONS = {
    "kind": "What shape is shown?",
    "colour": "What color are the shapes?",
    "position": "Where are the shapes?",
    "count": "How many shapes are there?",
}
CAPTION_PROMPT = "Describe the image briefly."
SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}


@dataclass(frozen=True)
class Scene:
    kind: str
    colour: str
    position: str
    count: int

    def answers(self) -> dict[str, str]:
        return {"kind": self.kind, "colour": self.colour, "position": self.position,
                "count": COUNT_WORDS[self.count - 1]}

    def caption(self) -> str:
        noun = self.kind + ("s" if self.count > 1 else "")
        where = "in the center" if self.position == "center" else f"on the {self.position}"
        return f"{COUNT_WORDS[self.count - 1]} {self.colour} {noun} {where}"


def random_scene(rng: random.Random) -> Scene:
    return Scene(rng.choice(KINDS), rng.choice(sorted(COLOURS)), rng.choice(POSITIONS), rng.randint(1, 3))


def render(scene: Scene, size: int, rng: random.Random) -> Image.Image:
    """Draw the scene: shapes of radius ~size/10 centred in their column, evenly spread vertically.

    The shapes are as large as three in a column allow with a gap of a pixel or more (centres size/4
    apart, half-extent at most size/10 + size/80), so that a tiny vision encoder can tell a square from a
    circle; sizes and positions are jittered a little."""
    image = Image.new("RGB", (size, size), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    column = POSITIONS.index(scene.position)
    jitter = size / 80
    for i in range(scene.count):
        cx = size * (2 * column + 1) / 6 + rng.uniform(-jitter, jitter)
        cy = size * (i + 1) / (scene.count + 1) + rng.uniform(-jitter, jitter)
        r = size / 10 * rng.uniform(0.9, 1.0)
        box = (cx - r, cy - r, cx + r, cy + r)
        fill = COLOURS[scene.colour]
        if scene.kind == "circle":
            draw.ellipse(box, fill=fill)
        elif scene.kind == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return image


def vocabulary() -> list[str]:
    """Every word a record can contain (questions, answers, captions), for building tiny tokenizers."""
    words = {*KINDS, *(k + "s" for k in KINDS), *COLOURS, *POSITIONS, *COUNT_WORDS, "in", "the", "on"}
    for text in (*QUESTIONS.values(), CAPTION_PROMPT):
        words.update(text.replace("?", " ?").replace(".", " .").split())
    return sorted(words)


def split_sizes(n: int) -> dict[str, int]:
    """Images per split: 80/10/10, every split non-empty once ``n >= 3``."""
    val = max(1, round(n * SPLITS["val"])) if n >= 3 else 0
    test = max(1, round(n * SPLITS["test"])) if n >= 3 else 0
    return {"train": n - val - test, "val": val, "test": test}


def write_synth_shapes(out: Path, n: int, seed: int, size: int = 64) -> dict[str, int]:
    """Generate ``n`` images and their records under ``out``; returns the record count per split."""
    if n < 3:
        raise ValueError(f"--n must be at least 3 (one image per split), got {n}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    records: dict[str, list] = {split: [] for split in SPLITS}
    captions: dict[str, list] = {split: [] for split in SPLITS}
    index = 0
    for split, count in split_sizes(n).items():
        for _ in range(count):
            scene = random_scene(rng)
            name = f"images/{index:06d}.png"
            render(scene, size, rng).save(out / name, optimize=False)
            for question_kind, answer in scene.answers().items():
                records[split].append({
                    "id": f"{index:06d}-{question_kind}", "image": name,
                    "conversations": [{"from": "human", "value": f"<image>\n{QUESTIONS[question_kind]}"},
                                      {"from": "gpt", "value": answer}],
                })
            captions[split].append({
                "id": f"{index:06d}-caption", "image": name,
                "conversations": [{"from": "human", "value": f"<image>\n{CAPTION_PROMPT}"},
                                  {"from": "gpt", "value": scene.caption()}],
            })
            index += 1
    for split in SPLITS:
        (out / f"{split}.json").write_text(json.dumps(records[split], indent=1) + "\n")
        (out / f"{split}_captions.json").write_text(json.dumps(captions[split], indent=1) + "\n")
        (out / f"{split}_all.json").write_text(json.dumps(records[split] + captions[split], indent=1) + "\n")
    meta = {"dataset": "synth-shapes", "n_images": n, "seed": seed, "image_size": size,
            "records": {split: len(rows) for split, rows in records.items()}, "vocabulary": vocabulary()}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta["records"]
