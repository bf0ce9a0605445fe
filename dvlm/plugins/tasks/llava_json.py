"""Tasks over local LLaVA-format JSON files (the synthetic-shapes splits are two presets of it)."""

from __future__ import annotations

import json
from pathlib import Path

from dvlm.core.errors import DataError
from dvlm.core.interfaces import EvalSample
from dvlm.plugins.tasks import metrics

IMAGE = "<image>"


class LlavaJsonTask:
    """Samples from one JSON file; ``score`` by exact match or CIDEr."""

    def __init__(self, params, root: str | Path | None = None) -> None:
        folder = params.root or root
        if folder is None:
            raise DataError(f"task '{params.kind}': no dataset folder: set `root:` in the task spec")
        self.file = Path(folder) / params.file
        self.image_folder = Path(folder) / params.image_folder
        self.metric = params.metric
        self.limit = params.limit
        self.gen_length = params.gen_length

    def samples(self) -> list[EvalSample]:
        try:
            rows = json.loads(self.file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"{self.file}: cannot read the task's samples: {err}") from None
        out = []
        for index, row in enumerate(rows[: self.limit] if self.limit else rows):
            turns = row.get("conversations", []) if isinstance(row, dict) else []
            question = next((t["value"] for t in turns if t.get("from") == "human"), None)
            answer = next((t["value"] for t in turns if t.get("from") == "gpt"), None)
            if question is None or answer is None:
                raise DataError(f"{self.file}: row {index} needs a human and a gpt turn")
            images = row.get("image") or []
            images = [images] if isinstance(images, str) else list(images)
            prompt = question.replace(IMAGE, "").strip()
            out.append(EvalSample(str(row.get("id", index)), prompt,
                                  tuple(str(self.image_folder / name) for name in images), (answer,)))
        return out

    def score(self, predictions: list[str], samples: list[EvalSample]) -> dict[str, list[float]]:
        references = [s.references for s in samples]
        scorer = metrics.cider if self.metric == "cider" else metrics.exact_match
        return {self.metric: scorer(predictions, references)}


class SuffixInfillTask:
    """Constrained captioning (LaViDa's bidirectional infilling): each caption's last word, with the space before
    it (as a BPE token carries it), is fixed at its place, after as many masks as the reference has tokens
    before it, and the model fills in the rest. Scored by ``constraint`` (the answer ends with the fixed word: no early end, nothing
    overwritten) and CIDEr-D of the whole caption."""

    def __init__(self, captions: LlavaJsonTask) -> None:
        self.captions = captions
        self.gen_length = captions.gen_length

    def samples(self) -> list[EvalSample]:
        out = []
        for sample in self.captions.samples():
            reference = sample.references[0]
            head, _, last = reference.rpartition(" ")
            draft = ((False, head), (True, " " + last)) if head else ((True, last),)
            out.append(EvalSample(sample.id, sample.prompt, sample.images, sample.references, draft))
        return out

    def score(self, predictions: list[str], samples: list[EvalSample]) -> dict[str, list[float]]:
        kept = [float(metrics.normalize(p).endswith(metrics.normalize(s.draft[-1][1]))) for p, s in zip(predictions, samples)]
        return {"constraint": kept, "cider": metrics.cider(predictions, [s.references for s in samples])}


def shapes_vqa(params, root: str | Path | None = None) -> LlavaJsonTask:
    from dvlm.plugins.tasks.params import LlavaJsonParams

    return LlavaJsonTask(LlavaJsonParams(root=params.root, limit=params.limit, gen_length=params.gen_length,
                                         file=f"{params.split}.json", metric="exact_match"), root)


def shapes_caption(params, root: str | Path | None = None) -> LlavaJsonTask:
    from dvlm.plugins.tasks.params import LlavaJsonParams

    return LlavaJsonTask(LlavaJsonParams(root=params.root, limit=params.limit, gen_length=params.gen_length,
                                         file=f"{params.split}_captions.json", metric="cider"), root)


def shapes_caption_infill(params, root: str | Path | None = None) -> SuffixInfillTask:
    return SuffixInfillTask(shapes_caption(params, root))
