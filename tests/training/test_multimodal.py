"""Training a vision-language model: one vision forward per step for both complementary copies, stage-1
freezing and per-part rates, and learning on the synthetic shapes task."""

import json
import random

import torch
from safetensors.torch import load_file

from dvlm.core.plugins import get_registry
from dvlm.data.batching import collate
from dvlm.data.encode import IMAGE_SLOT, ConversationEncoder
from dvlm.data.llava import load_llava
from dvlm.data.synth_shapes import write_synth_shapes
from dvlm.train import distributed
from dvlm.train.loop import train
from dvlm.train.model import TrainingModel
from dvlm.train.optim import build_optimizer
from dvlm.train.setup import build_model
from tests.training.conftest import shapes_spec


def one_batch(tmp_path, spec, model, size=3):
    write_synth_shapes(tmp_path / "shapes", n=10, seed=0)
    records, _ = load_llava(tmp_path / "shapes" / "train.json")
    encoder = ConversationEncoder(model.tokenizer, model.chat_template, model.special_tokens, image_token_id=IMAGE_SLOT)
    return collate([encoder(r, random.Random(i)) for i, r in enumerate(records[:size])], model.special_tokens.eos_id)


def test_complementary_copies_share_one_vision_forward(tmp_path):
    spec = shapes_spec(tmp_path)
    model = TrainingModel(build_model(spec, distributed.start("cpu")))
    batch = one_batch(tmp_path, spec, model.model)
    calls = []
    model.model.vision.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    masking = get_registry().build("masking_strategies", spec.masking)
    loss, noised = model(batch, masking, torch.Generator().manual_seed(0))
    loss.backward()
    assert calls == [3]  # one forward, over the 3 images of the batch
    assert noised.copies == 2 and noised.masked.shape[0] == 6
    tokens_per_image = 16  # 32-px view, 8-px patches
    assert noised.masked.shape[1] == batch["input_ids"].shape[1] - 1 + tokens_per_image
    targets = (noised.labels[:3] != -100) | (noised.labels[3:] != -100)
    assert torch.equal(noised.masked[:3] | noised.masked[3:], targets)  # every target in exactly one copy
    assert not (noised.masked[:3] & noised.masked[3:]).any()
    grads = [p.grad for p in model.model.vision.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_stage_one_trains_the_projector_only(tmp_path):
    spec = shapes_spec(tmp_path, steps=2, optimizer__frozen=["vision", "backbone"], optimizer__lr=1e-2)
    torch.manual_seed(spec.seed)  # the run's initial weights
    before = {k: v.clone() for k, v in build_model(spec, distributed.start("cpu")).state_dict().items()}
    result = train(spec, progress=False)
    after = load_file(str(result.checkpoint / "model.safetensors"))
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("projector.") or k == "image_newline" for k in moved), moved
    assert any(k.startswith("projector.") for k in moved)


def test_stage_two_gives_the_vision_tower_its_own_rate(tmp_path):
    spec = shapes_spec(tmp_path, optimizer__lr=2e-5, optimizer__part_lr={"vision": 2e-6})
    model = TrainingModel(build_model(spec, distributed.start("cpu")))
    optimizer = build_optimizer(model.parts(), spec.optimizer)
    assert {g["name"]: g["lr"] for g in optimizer.param_groups} == {"vision": 2e-6, "projector": 2e-5,
                                                                    "backbone": 2e-5}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_loss_decreases_on_the_synthetic_task(tmp_path):
    train(shapes_spec(tmp_path, steps=8, optimizer__lr=5e-3), progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert len(losses) == 8 and sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2, losses
