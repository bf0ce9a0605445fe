"""Tiny models, data and specs shared by the training tests (all CPU, seconds)."""

import json
import random

import pytest

from dvlm.core.plugins import get_registry
from dvlm.core.specs import parse_spec

TINY_LLADA = {"kind": "llada", "d_model": 32, "n_heads": 2, "n_kv_heads": 2, "n_layers": 2, "mlp_hidden_size": 64,
              "vocab_size": 256, "mask_token_id": 250, "eos_token_id": 251, "pad_token_id": 251,
              "eot_token_id": 252, "bos_token_id": None, "extra_token_ids": {"fim": 246, "fim_filler": 247},
              "dtype": "float32"}
FACTS = {"apple": "red", "sky": "blue", "grass": "green", "sun": "yellow", "cherry": "red", "leaf": "green",
         "sea": "blue", "lemon": "yellow"}


def write_text_task(folder, n=48, seed=0):
    """A text-only LLaVA-format task: 'color of X?' -> one word."""
    rng = random.Random(seed)
    rows = [{"id": f"r{i}", "conversations": [{"from": "human", "value": f"color of {thing}?"},
                                               {"from": "gpt", "value": FACTS[thing]}]}
            for i, thing in enumerate(rng.choices(sorted(FACTS), k=n))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.json").write_text(json.dumps(rows))
    (folder / "val.json").write_text(json.dumps(rows[:8]))
    return folder


TINY_SIGLIP = {"kind": "siglip", "init": "random", "image_size": 32, "patch_size": 8, "hidden_size": 32,
               "intermediate_size": 64, "num_layers": 2, "num_heads": 2, "dtype": "float32"}


def text_spec(tmp_path, **overrides):
    """A validated TrainSpec for the text task: tiny LLaDA, complementary masking, 6 steps.
    Overrides use ``__`` for nesting: ``optimizer__lr=1e-4``."""
    data = write_text_task(tmp_path / "data")
    body = {
        "model": {"backbone": TINY_LLADA, "chat_template": {"kind": "llada", "system_prompt": None}},
        "masking": {"kind": "complementary"},
        "data": {"root": str(data)},
        "optimizer": {"lr": 3e-3, "warmup_steps": 1},
        "steps": 6, "global_batch_size": 4, "micro_batch_size": 2,
        "eval": {"exact_match": False, "max_examples": 4},
        "out_dir": str(tmp_path / "run"),
    }
    return _override(body, overrides)


def shapes_spec(tmp_path, **overrides):
    """A validated TrainSpec on the synthetic shapes dataset (generated into the run folder): tiny SigLIP +
    projector + LLaDA, one view per image."""
    body = {
        "model": {"backbone": TINY_LLADA, "vision_encoder": TINY_SIGLIP, "projector": {"kind": "mlp2x_gelu"},
                  "image_layout": {"kind": "single"}, "chat_template": {"kind": "llada", "system_prompt": None}},
        "masking": {"kind": "complementary"},
        "data": {"synth_images": 30},
        "optimizer": {"lr": 3e-3, "warmup_steps": 1},
        "steps": 6, "global_batch_size": 8, "micro_batch_size": 8,
        "eval": {"exact_match": False, "max_examples": 8},
        "out_dir": str(tmp_path / "run"),
    }
    return _override(body, overrides)


def _override(body, overrides):
    for key, value in overrides.items():
        node = body
        *parents, leaf = key.split("__")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return parse_spec(body, as_type="train")


@pytest.fixture
def tiny_backbone():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    params = get_registry().get("backbones", "llada").params.model_validate(TINY_LLADA)
    return get_registry().build("backbones", params)


@pytest.fixture
def template():
    params = get_registry().get("chat_templates", "llada").params(system_prompt=None)
    return get_registry().build("chat_templates", params)


@pytest.fixture
def tokenizer(tiny_backbone):
    from dvlm.core.tiny_tokenizer import build_tiny_tokenizer, special_tokens_for

    return build_tiny_tokenizer(special_tokens_for(tiny_backbone.params))
