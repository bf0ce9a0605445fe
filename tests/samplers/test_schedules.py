"""Schedules against the reference vectors (schedules.json) and their invariants (hypothesis)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dvlm
from dvlm.plugins.schedules import (
    CosineScheduleParams,
    DreamScheduleParams,
    LinearFloorScheduleParams,
    LinearScheduleParams,
    LogitNormalScheduleParams,
    ShiftScheduleParams,
)
from tests.samplers.conftest import schedules_fixture

FIXTURE = schedules_fixture()


def build(params):
    return dvlm.registry().build("schedules", params)


def drop_trailing_zero_steps(counts: list[list[int]]) -> torch.Tensor:
    """The reference keeps all-zero trailing steps (``steps > masks``); dvlm drops them (they commit nothing)."""
    t = torch.tensor(counts)
    used = t.any(0).nonzero()
    return t[:, : int(used.max()) + 1] if len(used) else t[:, :0]


def lavida_params(schedule, kwargs):
    """LaViDa's ``(schedule, schedule_kwargs)`` -> dvlm schedule params."""
    if schedule is None:
        return LinearScheduleParams()
    if schedule == "shift":
        return ShiftScheduleParams(alpha=(kwargs or {}).get("shift", 3))  # the reference default is 3
    named = {"cosine": CosineScheduleParams, "logit_normal": LogitNormalScheduleParams}
    return named.get(schedule, LinearFloorScheduleParams)()  # LaViDa: any other name is the identity curve


@pytest.mark.parametrize("case", FIXTURE["llada_get_num_transfer_tokens"]["cases"], ids=str)
def test_linear_matches_llada(case):
    counts = build(LinearScheduleParams()).counts(torch.tensor(case["mask_counts"]), case["steps"])
    assert torch.equal(counts, drop_trailing_zero_steps(case["num_transfer_tokens"]))


@pytest.mark.parametrize("case", FIXTURE["lavida_get_num_transfer_tokens_sch"]["cases"], ids=str)
def test_named_schedules_match_lavida(case):
    schedule = build(lavida_params(case["schedule"], case["schedule_kwargs"]))
    counts = schedule.counts(torch.tensor(case["num_masks"]), case["steps"])
    assert torch.equal(counts, drop_trailing_zero_steps(case["num_transfer_tokens"]))


@pytest.mark.parametrize("case", FIXTURE["dream_transfer_counts"]["cases"],
                         ids=lambda c: f"{c['num_masks']}-{c['steps']}")
def test_dream_rule_matches_dream(case):
    counts = build(DreamScheduleParams(eps=case["eps"])).counts(torch.tensor([case["num_masks"]]), case["steps"])
    assert counts[0].tolist() == case["per_step"]


def test_linear_and_linear_floor_are_different_kinds():
    masks = torch.tensor([17])
    assert build(LinearScheduleParams()).counts(masks, 5).tolist() == [[4, 4, 3, 3, 3]]
    assert build(LinearFloorScheduleParams()).counts(masks, 5).tolist() == [[4, 3, 4, 3, 3]]


FLOOR_AND_LINEAR = [LinearScheduleParams(), LinearFloorScheduleParams(), CosineScheduleParams(),
                    LogitNormalScheduleParams(), ShiftScheduleParams(), ShiftScheduleParams(alpha=3.0),
                    ShiftScheduleParams(alpha=0.05)]


@settings(max_examples=60, deadline=None)
@given(masks=st.lists(st.integers(0, 300), min_size=1, max_size=4), steps=st.integers(1, 96),
       which=st.integers(0, len(FLOOR_AND_LINEAR) - 1))
def test_counts_sum_to_masks_at_least_one_per_step_never_more_steps_than_masks(masks, steps, which):
    counts = build(FLOOR_AND_LINEAR[which]).counts(torch.tensor(masks), steps)
    assert counts.dtype == torch.int64 and counts.shape[0] == len(masks)
    assert counts.shape[1] == min(steps, max(masks))
    for row, m in zip(counts.tolist(), masks):
        used = min(steps, m)
        assert sum(row) == m
        assert all(c >= 1 for c in row[:used]) and all(c == 0 for c in row[used:])


@settings(max_examples=60, deadline=None)
@given(masks=st.integers(0, 400), steps=st.integers(1, 200), eps=st.sampled_from([1e-3, 1e-2, 0.1]))
def test_dream_rule_sums_to_masks_with_steps_entries(masks, steps, eps):
    counts = build(DreamScheduleParams(eps=eps)).counts(torch.tensor([masks]), steps)[0].tolist()
    assert len(counts) == steps and sum(counts) == masks and min(counts) >= 0


def test_row_counts_do_not_depend_on_the_batch():
    schedule = build(ShiftScheduleParams())
    batch = schedule.counts(torch.tensor([24, 5, 16]), 8)
    for b, m in enumerate([24, 5, 16]):
        alone = schedule.counts(torch.tensor([m]), 8)[0]
        assert batch[b, : alone.numel()].tolist() == alone.tolist()
