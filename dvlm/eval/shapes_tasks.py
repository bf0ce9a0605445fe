"""The data of the ``dvlm_shapes_*`` lmms-eval tasks, made from the synthetic shapes dataset.

``write_task_data(out, n, seed)`` runs ``dvlm data synth-shapes`` (``write_synth_shapes``) and turns one
split into what the task YAMLs read:

    images/*.png            the split's images (the synthetic dataset's files)
    shapes_vqa.jsonl        {id, image, kind, question, answer}            -> dvlm_shapes_vqa (exact match)
    shapes_mc.jsonl         the same rows + choices (every answer of that
                            question kind)                                 -> dvlm_shapes_mc (likelihood)
    shapes_caption.jsonl    {id, image, question, caption}                 -> dvlm_shapes_caption (CIDEr)

The package ships the test split of ``SHIPPED`` (a seed that no default training run uses, so a model
trained with ``dvlm train`` on the default synthetic data is evaluated on other images). For a larger
evaluation, write a whole task folder and pass it to ``--include_path``:

    python -m dvlm.eval.shapes_tasks --out my_tasks --n 2000 --seed 7
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from dvlm.data.synth_shapes import COLOURS, COUNT_WORDS, KINDS, POSITIONS, write_synth_shapes

SHIPPED = {"n": 200, "seed": 8132, "split": "test"}
"""What ``dvlm/eval/lmms_tasks/data`` holds: the test split (20 images) of this synthetic dataset."""

CHOICES = {"kind": list(KINDS), "colour": sorted(COLOURS), "position": list(POSITIONS), "count": list(COUNT_WORDS)}
"""The answers of each question kind: the choices of the multiple-choice task."""


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_task_data(out: str | Path, n: int, seed: int, split: str = "test") -> dict[str, int]:
    """Write the tasks' data for ``split`` of the synthetic dataset ``(n, seed)`` under ``out``; returns
    the row count of each file."""
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        write_synth_shapes(Path(tmp), n=n, seed=seed)
        records = json.loads((Path(tmp) / f"{split}.json").read_text())
        captions = json.loads((Path(tmp) / f"{split}_captions.json").read_text())
        (out / "images").mkdir(parents=True, exist_ok=True)
        for name in sorted({r["image"] for r in records}):
            shutil.copyfile(Path(tmp) / name, out / name)
    vqa = []
    for record in records:
        question, answer = (turn["value"] for turn in record["conversations"])
        kind = record["id"].rsplit("-", 1)[1]
        vqa.append({"id": record["id"], "image": record["image"], "kind": kind, "question": question,
                    "answer": answer})
    mc = [{**row, "choices": CHOICES[row["kind"]]} for row in vqa]
    caption_rows = [{"id": r["id"], "image": r["image"], "question": r["conversations"][0]["value"],
                     "caption": r["conversations"][1]["value"]} for r in captions]
    files = {"shapes_vqa.jsonl": vqa, "shapes_mc.jsonl": mc, "shapes_caption.jsonl": caption_rows}
    for name, rows in files.items():
        _jsonl(out / name, rows)
    return {name: len(rows) for name, rows in files.items()}


def write_task_folder(out: str | Path, n: int, seed: int, split: str = "test") -> Path:
    """A complete ``--include_path`` folder: the shipped task YAMLs and ``utils.py`` with new data."""
    from dvlm.eval import TASKS_DIR

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for source in [*TASKS_DIR.glob("*.yaml"), TASKS_DIR / "utils.py"]:
        shutil.copyfile(source, out / source.name)
    write_task_data(out / "data", n, seed, split)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a dvlm_shapes_* task folder for lmms-eval --include_path.")
    parser.add_argument("--out", required=True, type=Path, help="Folder to write (created).")
    parser.add_argument("--n", type=int, default=1000, help="Images of the synthetic dataset (80/10/10 split).")
    parser.add_argument("--seed", type=int, default=SHIPPED["seed"], help="Seed of the synthetic dataset.")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="Split to evaluate on.")
    args = parser.parse_args()
    folder = write_task_folder(args.out, args.n, args.seed, args.split)
    print(f"wrote {folder}; run lmms-eval with --include_path {folder.resolve()}")


if __name__ == "__main__":
    main()
