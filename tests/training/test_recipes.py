"""The shipped recipes (LaViDa stage 1/2/3-FIM, LLaDA-V stage 1/2, LaViDa stage 2 LoRA): every value
cites its source, they validate, the backbone is the real LLaDA-8B-Instruct, and each one trains on the
synthetic shapes data once shrunk with --set."""

import json
import re
from pathlib import Path

import pytest
import torch

from dvlm.core.checkpoint import detect_layout
from dvlm.presets import RECIPES
from dvlm.train.cli import load_train_spec
from dvlm.train.loop import train
from tests.training.conftest import TINY_LLADA, TINY_SIGLIP

REAL_CONFIG = Path(__file__).parents[1] / "fixtures" / "llada-8b-instruct-config"
NAMES = sorted(p.stem for p in RECIPES.glob("*.yaml"))
SOURCE = re.compile(r"#.*((lavida|backbones)\.md:\d+|dvlm choice)")


def tiny(name, tmp_path, *extra):
    """--set overrides that shrink a recipe to a tiny CPU run on the synthetic shapes data."""
    vision = {**TINY_SIGLIP, "kind": load_train_spec(Path(name)).model.vision_encoder.kind}
    return [f"model.backbone={json.dumps(TINY_LLADA)}", f"model.vision_encoder={json.dumps(vision)}",
            "epochs=null", "steps=2", "global_batch_size=4", "micro_batch_size=2", "data.synth_images=12",
            "data.extra_padding=4", "precision=fp32", "device=cpu", f"out_dir={tmp_path / name}",
            "eval.max_examples=2", *extra]


def test_the_seeds_recipes_ship():
    assert {"lavida-stage1", "lavida-stage2", "lavida-stage3-fim", "llada-v-stage1", "llada-v-stage2"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_value_names_its_source(name):
    text = (RECIPES / f"{name}.yaml").read_text()
    valued = [line for line in text.splitlines()
              if line.strip() and not line.lstrip().startswith("#") and re.search(r":\s*\S", line.split("#")[0])
              and not line.startswith(("spec:", "out_dir:", "model:", "data:", "optimizer:", "lora:"))
              and "pretrained:" not in line]
    unsourced = [line for line in valued if not SOURCE.search(line)]
    assert not unsourced, unsourced


def test_recipes_use_the_real_llada_8b_architecture():
    _, layout = detect_layout(REAL_CONFIG)
    real = layout.read(REAL_CONFIG).spec.backbone
    for name in NAMES:
        backbone = load_train_spec(Path(name)).model.backbone
        for field in ("d_model", "n_heads", "n_kv_heads", "n_layers", "mlp_hidden_size", "vocab_size",
                      "rope_theta", "mask_token_id", "eos_token_id"):
            assert getattr(backbone, field) == getattr(real, field), (name, field)


@pytest.mark.parametrize("name", NAMES)
def test_recipe_trains_on_synthetic_data_when_shrunk(name, tmp_path):
    spec = load_train_spec(Path(name), tiny(name, tmp_path))
    assert spec.parallelism.kind == load_train_spec(Path(name)).parallelism.kind
    result = train(spec, progress=False, log=lambda message: None)
    assert result.step == 2 and torch.isfinite(torch.tensor(result.last_loss))
