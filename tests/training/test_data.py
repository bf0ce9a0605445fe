"""LLaVA-format rows -> ids and labels: what is supervised, multi-turn policies, FIM, padding, bad rows."""

import json
import random
from collections import Counter

import pytest
import torch

from dvlm.core.errors import DataError
from dvlm.core.masked_batch import IGNORE_INDEX
from dvlm.data.batching import ExampleOrder, collate
from dvlm.data.encode import ConversationEncoder, Encoded
from dvlm.data.llava import Record, load_llava
from dvlm.plugins.masking.fim import FimParams

CONVERSATION = Record("c", (("user", "q one"), ("assistant", "a one"), ("user", "q two"), ("assistant", "a two"),
                            ("user", "q three"), ("assistant", "a three")))


def targets(tokenizer, encoded):
    """The supervised text, with the ids between separate targets shown as '|'."""
    out, previous = [], False
    for token, label in zip(encoded.input_ids, encoded.labels):
        if label != IGNORE_INDEX:
            out.append(tokenizer.decode([label], skip_special_tokens=False))
        elif previous:
            out.append("|")
        previous = label != IGNORE_INDEX
    return "".join(out)


def context(tokenizer, encoded):
    return tokenizer.decode([t for t, l in zip(encoded.input_ids, encoded.labels) if l == IGNORE_INDEX],
                            skip_special_tokens=False)


def test_all_rounds_supervises_every_answer_and_its_end_of_turn(tokenizer, template, tiny_backbone):
    encoder = ConversationEncoder(tokenizer, template, tiny_backbone.special_tokens, multi_turn="all_rounds")
    encoded = encoder(CONVERSATION, random.Random(0))
    assert targets(tokenizer, encoded) == "a one<|eot_id|>|a two<|eot_id|>|a three<|eot_id|>"
    whole = tokenizer.decode(encoded.input_ids, skip_special_tokens=False)
    assert whole == template.render([{"role": r, "content": t} for r, t in CONVERSATION.turns],
                                    add_generation_prompt=False)


def test_sample_round_drops_the_history(tokenizer, template, tiny_backbone):
    encoder = ConversationEncoder(tokenizer, template, tiny_backbone.special_tokens, multi_turn="sample_round")
    seen = Counter()
    for seed in range(300):
        encoded = encoder(CONVERSATION, random.Random(seed))
        answer = targets(tokenizer, encoded).removesuffix("<|eot_id|>")
        question = "q" + answer[1:]
        assert question in context(tokenizer, encoded) and context(tokenizer, encoded).count("q ") == 1
        seen[answer] += 1
    assert set(seen) == {"a one", "a two", "a three"} and min(seen.values()) > 70  # uniform over rounds


def test_sample_round_with_history_keeps_earlier_rounds_as_context(tokenizer, template, tiny_backbone):
    encoder = ConversationEncoder(tokenizer, template, tiny_backbone.special_tokens,
                                  multi_turn="sample_round_with_history")
    for seed in range(40):
        encoded = encoder(CONVERSATION, random.Random(seed))
        answer = targets(tokenizer, encoded).removesuffix("<|eot_id|>")
        round_index = ["a one", "a two", "a three"].index(answer)
        text = context(tokenizer, encoded)
        assert all(f"a {w}" in text for w in ["one", "two", "three"][:round_index])
        assert text.count("q ") == round_index + 1


def test_fim_marker_is_context_and_fillers_are_targets(tokenizer, template, tiny_backbone):
    special = tiny_backbone.special_tokens
    fim, filler = special.extra["fim"], special.extra["fim_filler"]
    record = Record("f", (("user", "describe"), ("assistant", "one two three four five six")))
    encoder = ConversationEncoder(tokenizer, template, special, fim=FimParams(probability=1.0))
    encoded = encoder(record, random.Random(3))
    assert fim in encoded.input_ids
    for token, label in zip(encoded.input_ids, encoded.labels):
        if token == fim:
            assert label == IGNORE_INDEX
        if token == filler:
            assert label == filler
    words = tokenizer.decode([t for t in encoded.input_ids if t not in (fim, filler)], skip_special_tokens=False)
    assert " ".join(words.split("\n\n")[-1].removesuffix("<|eot_id|>").split()) == "one two three four five six"


def test_fim_without_its_tokens_is_a_clear_error(tokenizer, template):
    from dvlm.core.interfaces import SpecialTokens

    with pytest.raises(DataError, match="fim"):
        ConversationEncoder(tokenizer, template, SpecialTokens(mask_id=250, eos_id=251, pad_id=251),
                            fim=FimParams())


def test_image_rows_need_a_vision_model(tokenizer, template, tiny_backbone, tmp_path):
    record = Record("i", (("user", "<image>\nwhat?"), ("assistant", "x")), (tmp_path / "a.png",))
    with pytest.raises(DataError, match="no vision encoder"):
        ConversationEncoder(tokenizer, template, tiny_backbone.special_tokens)(record, random.Random(0))
    encoded = ConversationEncoder(tokenizer, template, tiny_backbone.special_tokens, image_token_id=-200)(
        record, random.Random(0))
    assert encoded.input_ids.count(-200) == 1 and encoded.labels[encoded.input_ids.index(-200)] == IGNORE_INDEX


def test_padding_is_end_of_sequence_targets_with_optional_extra_length():
    examples = [Encoded([1, 2, 3], [IGNORE_INDEX, 2, 3]), Encoded([4], [4])]
    batch = collate(examples, eos_id=9)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 2, 3], [4, 9, 9]]
    lengths = {collate(examples, 9, extra_padding=4, rng=random.Random(s))["input_ids"].shape[1] for s in range(200)}
    assert lengths == {3, 4, 5, 6, 7}  # longest + max(0, U{-4..4})


def test_each_epoch_is_a_permutation_and_micro_batches_split_each_step():
    order = ExampleOrder(10, seed=1)
    epochs = [[order[e * 10 + i][1] for i in range(10)] for e in range(3)]
    assert all(sorted(e) == list(range(10)) for e in epochs) and epochs[0] != epochs[1]
    step = [order.micro_batch(3, u, 2, 6) for u in range(3)]
    assert sum(step, []) == [order[p] for p in range(18, 24)]


def write_rows(tmp_path, rows):
    (tmp_path / "ok.png").write_bytes(b"png")
    file = tmp_path / "rows.json"
    file.write_text(json.dumps(rows))
    return file


BAD_ROWS = [
    {"id": "good", "image": "ok.png",
     "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
    {"id": "text-only", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
    {"id": "missing", "image": "gone.png", "conversations": [{"from": "human", "value": "<image>q"},
                                                             {"from": "gpt", "value": "a"}]},
    {"id": "no-answer", "conversations": [{"from": "human", "value": "q"}]},
    {"id": "empty", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "  "}]},
    {"id": "order", "conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]},
    {"id": "two-slots", "image": "ok.png", "conversations": [{"from": "human", "value": "<image><image>"},
                                                             {"from": "gpt", "value": "a"}]},
    "not a row",
]


def test_malformed_rows_are_counted_and_skipped(tmp_path):
    records, report = load_llava(write_rows(tmp_path, BAD_ROWS), malformed="skip")
    assert [r.id for r in records] == ["good", "text-only"]
    assert records[0].turns[0] == ("user", "<image>\nq")  # the placeholder LLaVA prepends
    assert report.problems == {"missing_image": 1, "no_answer_turn": 1, "empty_answer": 1, "turns_out_of_order": 1,
                               "image_placeholder_mismatch": 1, "not_a_conversation": 1}
    assert "6 of 8 rows malformed" in report.summary() and "missing_image 1 (e.g. missing)" in report.summary()


def test_malformed_rows_can_fail_the_run(tmp_path):
    with pytest.raises(DataError, match=r"6 of 8 rows malformed.*malformed: skip"):
        load_llava(write_rows(tmp_path, BAD_ROWS), malformed="fail")


def test_unreadable_data_is_one_clear_error(tmp_path):
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(DataError, match="invalid JSON"):
        load_llava(tmp_path / "broken.json")
    with pytest.raises(DataError, match="cannot read"):
        load_llava(tmp_path / "absent.json")


def test_complementary_masking_never_masks_the_fim_marker(tokenizer, template, tiny_backbone):
    from dvlm.core.plugins import get_registry

    special = tiny_backbone.special_tokens
    fim, filler = special.extra["fim"], special.extra["fim_filler"]
    record = Record("f", (("user", "describe"), ("assistant", "one two three four five six seven eight")))
    encoder = ConversationEncoder(tokenizer, template, special, fim=FimParams(probability=1.0, max_fillers=3))
    batch = collate([encoder(record, random.Random(seed)) for seed in range(8)], special.eos_id)
    masking = get_registry().build("masking_strategies", get_registry().get("masking_strategies",
                                                                            "complementary").params())
    out = masking({"labels": batch["labels"]}, torch.Generator().manual_seed(0))
    ids = batch["input_ids"]
    assert bool((ids == fim).any()) and bool((ids == filler).any())
    masked_count = out.masked[:8].int() + out.masked[8:].int()  # [B, T]: copies that mask each position
    assert bool((masked_count[ids == fim] == 0).all())  # visible in both copies
    assert bool((masked_count[ids == filler] == 1).all())  # an ordinary target: masked in exactly one copy
