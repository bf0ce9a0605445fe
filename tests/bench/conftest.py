"""A tiny text-only matrix (trains in seconds) shared by the bench tests."""

import copy

import pytest

from tests.training.conftest import TINY_LLADA, write_text_task


def tiny_matrix(data_root, *, axes=None, exclude=None, limit=8):
    return {
        "spec": "matrix",
        "name": "tiny",
        "base": {
            "train": {
                "model": {"backbone": TINY_LLADA, "chat_template": {"kind": "llada", "system_prompt": None}},
                "masking": {"kind": "uniform"},
                "data": {"root": str(data_root)},
                "optimizer": {"lr": 3e-3, "warmup_steps": 1},
                "steps": 4, "global_batch_size": 4, "micro_batch_size": 4,
                "eval": {"exact_match": False, "max_examples": 4},
            },
            "eval": {
                "tasks": [{"kind": "llava_json", "file": "val.json", "limit": limit, "gen_length": 4}],
                "sampler": "llada-reference",
                "batch_size": 4,
            },
        },
        "axes": copy.deepcopy(axes) if axes is not None else {
            "cache": {"none": {"eval.sampler.cache": {"kind": "none"}},
                      "prefix": {"eval.sampler.cache": {"kind": "prefix"}}},
        },
        "exclude": exclude or [],
        "baseline": {"cache": "none"} if axes is None else {},
    }


@pytest.fixture
def text_data(tmp_path):
    return write_text_task(tmp_path / "data", n=32)
