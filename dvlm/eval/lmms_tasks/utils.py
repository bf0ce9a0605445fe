"""Functions of the dvlm_shapes_* task YAMLs (lmms-eval loads this file by path: ``!function utils.x``)."""

from pathlib import Path

from PIL import Image

DATA = Path(__file__).resolve().parent / "data"


def doc_to_visual(doc):
    with Image.open(DATA / doc["image"]) as image:
        return [image.convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    """The question as the synthetic dataset asks it (``<image>\\n...``); the model applies its chat template."""
    return doc["question"]


def caption_results(doc, results):
    return {"cider": {"prediction": results[0], "references": [doc["caption"]]}}


def coco_cider_results(doc, results):
    """For a local copy of lmms-eval's COCO caption tasks (docs with an ``answer`` list of captions): CIDEr
    without java (README: evaluating on real benchmarks). Import it as ``dvlm.eval.lmms_tasks.utils``."""
    return {"cider": {"prediction": results[0], "references": list(doc["answer"])}}


def cider_aggregate(items):
    """Corpus CIDEr-D with dvlm's scorer (pycocoevalcap's Cider on Python-normalised text: no java).

    The items are scored in a canonical order: the corpus mean's float sum depends on the order, and a
    multi-process run gathers the items rank by rank, so without it the score would differ in its last bits
    from the single-process run."""
    from dvlm.plugins.tasks.metrics import cider

    items = sorted(items, key=lambda item: (item["prediction"], list(item["references"])))
    scores = cider([item["prediction"] for item in items], [item["references"] for item in items])
    return sum(scores) / max(len(scores), 1)
