"""A tiny vision-language model trained on the colour questions of the synthetic shapes data, shared by the
evaluation tests (the lmms-eval CLI, likelihood ranking, the web view).

Colour is the skill such a model learns first: with the settings below it answers every colour question of
the shipped test images after about 60 optimizer steps (shape, position and count take hundreds), so the
fixture trains on colour questions only, for 80 steps (about 20 s on 2 cores).
"""

import json
import os
from pathlib import Path

import pytest

from dvlm.core.specs import parse_spec
from dvlm.data.synth_shapes import write_synth_shapes

TINY_VLM = {
    "backbone": {"kind": "llada", "d_model": 64, "n_heads": 4, "n_kv_heads": 4, "n_layers": 2, "mlp_hidden_size": 256,
                 "vocab_size": 256, "max_sequence_length": 512, "mask_token_id": 250, "eos_token_id": 251,
                 "pad_token_id": 251, "eot_token_id": 252, "bos_token_id": None, "dtype": "float32"},
    "vision_encoder": {"kind": "siglip", "init": "random", "image_size": 64, "patch_size": 8, "hidden_size": 64,
                       "intermediate_size": 256, "num_layers": 2, "num_heads": 4, "dtype": "float32"},
    "projector": {"kind": "mlp2x_gelu"},
    "image_layout": {"kind": "single"},
    "chat_template": {"kind": "llada", "system_prompt": None},
}

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Environment for the subprocesses these tests start (lmms-eval, dvlm serve): see ``one_thread``."""

ARTIFACTS = Path(os.environ.get("DVLM_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "runs" / "test-artifacts"))
"""Where tests leave files for a person to look at (screenshots); ``runs/`` is git-ignored."""


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """These models are tiny: torch's intra-op threads add nothing but OpenMP spin-waits, which on 2 shared
    cores made the training fixture 10x slower. Restored when this package's tests end."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def colour_questions(root: Path) -> Path:
    """The synthetic shapes dataset with only its colour questions in train/val."""
    write_synth_shapes(root, n=400, seed=0)
    for split in ("train", "val"):
        rows = json.loads((root / f"{split}.json").read_text())
        (root / f"{split}.json").write_text(json.dumps([r for r in rows if r["id"].endswith("-colour")]))
    return root


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    from dvlm.train.loop import train

    root = tmp_path_factory.mktemp("colour_model")
    spec = parse_spec({
        "model": TINY_VLM,
        "masking": {"kind": "complementary"},
        "data": {"root": str(colour_questions(root / "data"))},
        "optimizer": {"lr": 3e-3, "warmup_steps": 10, "min_lr_ratio": 1.0},
        "steps": 80, "global_batch_size": 16, "micro_batch_size": 16, "seed": 0,
        "eval": {"exact_match": False, "max_examples": 1},
        "out_dir": str(root / "run"),
    }, as_type="train")
    return train(spec, progress=False, log=lambda *a, **k: None).checkpoint
