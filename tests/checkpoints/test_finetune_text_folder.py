"""Fine-tuning from a published text folder (tests/checkpoints/conftest.py), whose chat template is the
tokenizer's own (``chat_template: {kind: tokenizer}``): conversations encode to the ids transformers'
``apply_chat_template`` gives, each answer and the end of turn after it the target, and a short training run
works."""

from __future__ import annotations

import random
import warnings

import pytest
import torch

import dvlm
from dvlm.core.masked_batch import IGNORE_INDEX
from dvlm.core.specs import parse_spec
from dvlm.data.encode import ConversationEncoder
from dvlm.data.llava import Record
from dvlm.train.export import export
from dvlm.train.loop import train
from tests.checkpoints.conftest import TEXT, reference_tokenizer
from tests.training.conftest import write_text_task

TURNS = (("user", "What colour is the sky?"), ("assistant", "Blue, mostly."), ("user", "And grass?"),
         ("assistant", "Green."))


END = {"llada": ("<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n"),  # (end of turn, tail)
       "llada-llama": ("<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
       "dream": ("<|im_end|>", "")}


def runs(labels) -> list[list[int]]:
    """The contiguous target runs of ``labels``."""
    out, current = [], []
    for label in [*labels, IGNORE_INDEX]:
        if label != IGNORE_INDEX:
            current.append(label)
        elif current:
            out, current = [*out, current], []
    return out


def transformers_ids(tokenizer, turns) -> list[int]:
    messages = [{"role": role, "content": text} for role, text in turns]
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=False, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


@pytest.mark.parametrize("layout", list(TEXT))
def test_answers_are_located_in_the_tokenizers_own_template(real_folder, layout):
    folder = real_folder(layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dvlm.load_pretrained(folder)
    assert model.spec.chat_template.kind == "tokenizer"
    encoder = ConversationEncoder(model.tokenizer, model.chat_template, model.special_tokens, multi_turn="all_rounds")
    encoded = encoder(Record(id="r0", turns=TURNS), random.Random(0))

    reference = reference_tokenizer(folder)
    full = transformers_ids(reference, TURNS)
    assert encoded.input_ids == full[: len(encoded.input_ids)]
    # LLaDA's template writes the assistant header after the last turn even without add_generation_prompt:
    # not part of the conversation, so not trained on; Dream's "\n" after <|im_end|> is context
    assert reference.decode(full[len(encoded.input_ids):]) == END[layout][1]
    targets = [reference.decode(run) for run in runs(encoded.labels)]
    assert targets == [f"Blue, mostly.{END[layout][0]}", f"Green.{END[layout][0]}"]


@pytest.mark.parametrize("layout", ["llada", "dream"])
def test_two_training_steps_from_a_published_text_folder(real_folder, layout, tmp_path):
    spec = parse_spec({
        "init_from": str(real_folder(layout)),
        "masking": {"kind": "complementary"},
        "data": {"root": str(write_text_task(tmp_path / "data", n=8))},
        "optimizer": {"lr": 1e-3, "warmup_steps": 1},
        "steps": 2, "global_batch_size": 2, "micro_batch_size": 2, "precision": "fp32", "device": "cpu",
        "eval": {"exact_match": False, "max_examples": 2},
        "out_dir": str(tmp_path / "run"),
    }, as_type="train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(spec, progress=False, log=lambda message: None)
    assert result.step == 2 and torch.isfinite(torch.tensor(result.last_loss))
    reloaded = dvlm.load_pretrained(export(spec, tmp_path / "export"))
    assert reloaded.spec.chat_template.kind == "tokenizer" and reloaded.tokenizer.chat_template
