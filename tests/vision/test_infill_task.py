"""The constrained-caption task: the last word fixed in the answer window, the rest infilled."""

import dvlm
from dvlm.bench.evaluate import draft_ids
from dvlm.core.interfaces import EvalSample
from dvlm.core.plugins import get_registry
from dvlm.plugins.tasks.params import ShapesCaptionInfillParams
from dvlm.data.synth_shapes import write_synth_shapes


def test_drafts_fix_the_last_word_after_as_many_masks_as_the_reference_has_tokens(tmp_path, vlm_spec):
    write_synth_shapes(tmp_path, n=12, seed=0)
    task = get_registry().build("tasks", ShapesCaptionInfillParams(split="train", limit=3), tmp_path)
    samples = task.samples()
    assert len(samples) == 3
    for sample in samples:
        head, _, last = sample.references[0].rpartition(" ")
        assert sample.draft == ((False, head), (True, " " + last))
    model = dvlm.build(vlm_spec(layout={"kind": "single"}))
    tokens = model.backbone.special_tokens
    ids = draft_ids(model, samples)  # [B, D]; the tiny tokenizer is character-level: one token per character
    for row, sample in zip(ids.tolist(), samples):
        reference = sample.references[0]
        head = reference.rpartition(" ")[0]
        assert row[: len(head)] == [tokens.mask_id] * len(head)
        assert row[len(head): len(reference)] == [ord(c) for c in reference[len(head):]]
        assert set(row[len(reference):]) == {tokens.eot_id}
    plain = [EvalSample(s.id, s.prompt, s.images, s.references) for s in samples]
    assert draft_ids(model, plain) is None


def test_constraint_and_quality_are_scored_per_answer(tmp_path):
    write_synth_shapes(tmp_path, n=12, seed=0)
    task = get_registry().build("tasks", ShapesCaptionInfillParams(split="train", limit=3), tmp_path)
    samples = task.samples()
    scored = task.score([s.references[0] for s in samples[:2]] + ["two red"], samples)
    assert scored["constraint"] == [1.0, 1.0, 0.0] and len(scored["cider"]) == 3
    assert scored["cider"][0] > scored["cider"][2]


def test_an_infilled_answer_keeps_its_fixed_word(tmp_path, vlm_spec, image):
    write_synth_shapes(tmp_path, n=12, seed=0)
    task = get_registry().build("tasks", ShapesCaptionInfillParams(split="train", limit=2), tmp_path)
    samples = task.samples()
    model = dvlm.build(vlm_spec(layout={"kind": "single"}))
    out = dvlm.generate(model, prompt=[s.prompt for s in samples], images=[list(s.images) for s in samples],
                        draft=draft_ids(model, samples), sampler="llada-reference",
                        overrides=["gen_length=40", "steps=8", "block_length=40"])
    for answer, sample in zip(out.token_ids.tolist(), samples):
        reference = sample.references[0]
        start = len(reference.rpartition(" ")[0])
        assert answer[start: len(reference)] == [ord(c) for c in reference[start:]]  # never overwritten
