"""dvlm as an lmms-eval model (``--model dvlm``): generation with dvlm samplers, likelihood with ``dvlm.score``.

    python -m lmms_eval --model dvlm --model_args pretrained=DIR,sampler=lavida \\
        --tasks dvlm_shapes_vqa --include_path "$(python -m dvlm.eval)" --batch_size 8 \\
        --gen_kwargs steps=16,cache=prefix,schedule=shift,schedule.alpha=0.33

``--model_args``: ``pretrained`` (a checkpoint folder in any layout ``dvlm.load_pretrained`` reads),
``sampler`` (preset name or sampler spec file; default ``lavida``), ``device``, ``dtype``, and for
likelihood ``mc_num`` (default 128), ``mc_batch_size`` (16) and ``seed`` (0). ``--gen_kwargs`` and the
tasks' ``generation_kwargs`` map onto sampler fields (``dvlm.eval.gen_kwargs``).

``generate_until`` groups the requests by their generation settings, runs each group in batches of
``--batch_size`` (ragged prompts are left-padded; batching does not change the answers) and returns the
answers in request order. ``loglikelihood`` scores every continuation of one context in one
``dvlm.score`` call (the image is encoded once) and returns, as lmms-eval's own models do, a *loss*:
the Monte-Carlo bound on ``-log p(continuation | context)``, because lmms-eval's ``multiple_choice`` picks
the choice with the *smallest* value (``np.argmin``). The greedy flag is always False (LLaDA's authors
advise against the greedy check). lmms-eval 0.7.x turns every ``(value, greedy)`` pair into a string
(``unwrap_generation_output``); when that happens the pair is handed over inside a ``GenerationResult``,
which that function passes through unchanged.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts, unwrap_generation_output
from lmms_eval.api.model import lmms
from tqdm import tqdm

from dvlm.eval.gen_kwargs import cut_at_stop, sampler_for

SCORES_BECOME_STRINGS = isinstance(unwrap_generation_output((0.0, False))[0], str)
"""lmms-eval 0.7.x's bug: a ``(float, bool)`` output comes back as the string ``"(0.0, False)"``."""


def load_model(pretrained: str, device: str, dtype: str | None):
    """A checkpoint folder or hub id as a ``DiffusionVLM`` with the folder's tokenizer and chat template."""
    import dvlm

    return dvlm.load_pretrained(pretrained, dtype=dtype, device=device).eval()


class DvlmLmms(lmms):
    """A dvlm checkpoint behind lmms-eval's *simple* model interface."""

    is_simple = True

    def __init__(self, pretrained: str, sampler: str = "lavida", device: str = "cpu", dtype: str | None = None,
                 batch_size: int | str = 1, mc_num: int = 128, mc_batch_size: int = 16, seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - {"max_batch_size"})
        if unknown:
            raise ValueError(f"--model_args: dvlm does not know {unknown}; it takes pretrained, sampler, device, "
                             f"dtype, mc_num, mc_batch_size, seed")
        self.model = load_model(str(pretrained), device, dtype)
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.mc_num, self.mc_batch_size, self.seed = int(mc_num), int(mc_batch_size), int(seed)

    def _visuals(self, doc_to_visual, task: str, split: str, doc_id: int) -> list:
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual is not None else None
        return [v for v in (visuals or []) if v is not None]

    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        import dvlm

        groups: dict[str, list[int]] = defaultdict(list)
        for i, request in enumerate(requests):
            groups[json.dumps(request.args[1], sort_keys=True, default=str)].append(i)
        answers: list[GenerationResult | None] = [None] * len(requests)
        progress = tqdm(total=len(requests), desc="dvlm generate", disable=self.rank != 0)
        for indices in groups.values():
            params, stops = sampler_for(self.sampler, requests[indices[0]].args[1])
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                prompts, images = [], []
                for i in chunk:
                    context, _, doc_to_visual, doc_id, task, split = requests[i].args
                    prompts.append(context)
                    images.append(self._visuals(doc_to_visual, task, split, doc_id))
                result = dvlm.generate(self.model, prompt=prompts, images=images, sampler=params)
                for row, i in enumerate(chunk):
                    answers[i] = GenerationResult(cut_at_stop(result.text[row], stops),
                                                  TokenCounts(output_tokens=result.answer_lengths[row]))
                progress.update(len(chunk))
        progress.close()
        return answers

    def loglikelihood(self, requests: list[Instance]) -> list[Any]:
        import dvlm

        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, request in enumerate(requests):
            context, _, _, doc_id, task, split = request.args
            groups[(task, split, doc_id, context)].append(i)
        losses: list[Any] = [None] * len(requests)
        progress = tqdm(total=len(requests), desc="dvlm score", disable=self.rank != 0)
        for (task, split, doc_id, context), indices in groups.items():
            doc = self.task_dict[task][split][doc_id]
            continuations = []
            for i in indices:
                target = requests[i].args[1]
                continuations.append(target(doc) if callable(target) else target)
            visuals = self._visuals(requests[indices[0]].args[2], task, split, doc_id)
            scores = dvlm.score(self.model, context, [str(c) for c in continuations], images=visuals or None,
                                mc_num=self.mc_num, batch_size=self.mc_batch_size, seed=self.seed)
            for i, score in zip(indices, scores):
                pair = (-score, False)
                losses[i] = GenerationResult(pair) if SCORES_BECOME_STRINGS else pair
            progress.update(len(indices))
        progress.close()
        return losses

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("dvlm answers single-round requests only (generate_until, loglikelihood)")
