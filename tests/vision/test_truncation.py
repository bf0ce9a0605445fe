"""Fitting a long prompt into the context (issue #14): ``truncation: left`` keeps the BOS/system turn, and no
truncation ever cuts an image's features in half (an image is kept whole or dropped whole)."""

from __future__ import annotations

import pytest
import torch

import dvlm
from dvlm.core.prompt_truncation import truncate
from tests.vision.conftest import backbone_params

PROMPT = "look <image> then word word word word"
SYSTEM = {"kind": "llada", "system_prompt": "Be brief."}
IMAGE_ID = 251  # the pad id fills an image's span in input_ids


def build(vlm_spec, context: int, truncation: str):
    return dvlm.build({**vlm_spec(chat_template=SYSTEM), "truncation": truncation,
                       "backbone": backbone_params("llada", max_sequence_length=context).model_dump()})


def full_row(vlm_spec, image) -> list[int]:
    model = build(vlm_spec, 1024, "error")
    return model.prompt_batch(PROMPT, [image()], gen_length=0).input_ids[0].tolist()


@pytest.mark.parametrize("budget", [62, 43])
def test_left_truncation_keeps_the_system_turn_and_never_halves_an_image(vlm_spec, image, budget):
    full = full_row(vlm_spec, image)
    head = len(build(vlm_spec, 1024, "left").tokenizer.encode(
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>", add_special_tokens=False))
    start, span = full.index(IMAGE_ID), full.count(IMAGE_ID)
    assert 0 < head < start and span > 1
    plain = len(full) - budget  # where keeping the last `budget` tokens would cut: the system turn, or the image
    assert plain < head if budget == 62 else start < plain < start + span
    model = build(vlm_spec, budget + 8, "left")
    kept = model.prompt_batch(PROMPT, [image()], gen_length=8).input_ids[0].tolist()
    cut = len(full) - (budget - head)  # the head stays; the rest is cut here, or after an image it would halve
    cut = start + span if start < cut < start + span else cut
    assert kept == full[:head] + full[cut:] and len(kept) <= budget
    assert kept.count(IMAGE_ID) in (0, span)
    with torch.inference_mode():  # and it generates (the dropped image is never encoded)
        out = dvlm.generate(model, prompt=PROMPT, images=[image()], sampler="lavida", overrides=["gen_length=8",
                                                                                                  "steps=4"])
    assert out.token_ids.shape == (1, 8)


def test_right_truncation_drops_an_image_it_would_cut(vlm_spec, image):
    full = full_row(vlm_spec, image)
    start = full.index(IMAGE_ID)
    model = build(vlm_spec, start + 3 + 8, "right")
    kept = model.prompt_batch(PROMPT, [image()], gen_length=8).input_ids[0].tolist()
    assert kept == full[:start]


def test_truncate_pieces_keeps_whole_images():
    pieces = [[1, 2, 3], ("img", 4), [5, 6]]
    assert truncate(pieces, 9, "left") == pieces
    assert truncate(pieces, 7, "left", protected=1) == [[1], ("img", 4), [5, 6]]
    assert truncate(pieces, 6, "left", protected=1) == [[1, 5, 6]]
    assert truncate(pieces, 6, "right") == [[1, 2, 3]]
    with pytest.raises(dvlm.DvlmError, match="system turn alone take 3 tokens"):
        truncate(pieces, 2, "left", protected=3)
