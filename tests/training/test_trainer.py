"""The trainer: exact resume, freezing and per-part rates, schedule, divergence, learning."""

import math

import pytest
import torch
from safetensors.torch import load_file

from dvlm.core.errors import SpecError, TrainingError
from dvlm.core.plugins import get_registry
from dvlm.train import checkpointing, distributed
from dvlm.train.determinism import generator
from dvlm.train.loop import Trainer, train
from dvlm.train.model import TrainingModel, enable_gradient_checkpointing
from dvlm.train.optim import warmup_cosine
from dvlm.train.setup import build_model
from dvlm.train.spec import OptimizerSpec
from tests.training.conftest import shapes_spec, text_spec


def weights(checkpoint):
    return load_file(str(checkpoint / "model.safetensors"))


def test_interrupted_run_resumed_at_step_k_ends_identical(tmp_path):
    whole = train(text_spec(tmp_path / "a", steps=5, checkpoint_every=2), progress=False)
    spec = text_spec(tmp_path / "b", steps=5, checkpoint_every=2)
    first = train(spec, stop_after=3, progress=False)
    assert first.step == 3 and first.checkpoint.name == "step-000003"
    interrupted = weights(first.checkpoint)
    second = train(spec, resume=True, progress=False)
    assert second.start_step == 3 and second.step == 5
    a, b = weights(whole.checkpoint), weights(second.checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    moments_a = load_file(str(whole.checkpoint / "optimizer.safetensors"))
    moments_b = load_file(str(second.checkpoint / "optimizer.safetensors"))
    assert all(torch.equal(moments_a[k], moments_b[k]) for k in moments_a)
    assert whole.last_loss == second.last_loss
    head = "backbone.lm_head.weight"
    assert not torch.equal(a[head], interrupted[head])  # it did train after the resume


def test_half_written_checkpoints_are_never_resumed_from(tmp_path):
    spec = text_spec(tmp_path, steps=3, checkpoint_every=1, keep_checkpoints=5)
    train(spec, stop_after=2, progress=False)
    root = tmp_path / "run" / "checkpoints"
    (root / ".step-000003.tmp-999").mkdir()  # a crash while writing: the temporary name
    (root / "step-000009").mkdir()  # a folder without its trainer state
    assert [p.name for p in checkpointing.checkpoint_dirs(root)] == ["step-000001", "step-000002"]
    assert train(spec, resume=True, progress=False).start_step == 2


def test_a_run_with_checkpoints_is_not_overwritten_without_resume(tmp_path):
    spec = text_spec(tmp_path, steps=1)
    train(spec, progress=False)
    with pytest.raises(TrainingError, match="--resume"):
        train(spec, progress=False)


def test_resume_with_another_spec_is_refused(tmp_path):
    train(text_spec(tmp_path, steps=2), progress=False)
    with pytest.raises(TrainingError, match="different spec"):
        train(text_spec(tmp_path, steps=2, optimizer__lr=1e-4), resume=True, progress=False)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    spec = text_spec(tmp_path, steps=8, checkpoint_every=1, optimizer__lr=1e30, optimizer__warmup_steps=0,
                     optimizer__max_grad_norm=None)
    with pytest.raises(TrainingError, match=r"(loss|gradient norm) is (nan|inf).*step-0000\d\d, is kept"):
        train(spec, progress=False)
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))
    assert checkpoints, "at least one good step was checkpointed"
    last = weights(checkpoints[-1])
    assert all(torch.isfinite(t).all() for t in last.values())


def test_frozen_parts_do_not_move(tmp_path):
    spec = text_spec(tmp_path, steps=2, optimizer__frozen=["backbone"])
    with pytest.raises(SpecError, match="nothing would be trained"):
        train(spec, progress=False)
    with pytest.raises(SpecError, match="unknown model part"):
        train(text_spec(tmp_path / "x", steps=1, optimizer__part_lr={"vision": 1e-5}), progress=False)


def test_warmup_then_cosine_to_the_floor():
    factor = warmup_cosine(100, OptimizerSpec(warmup_steps=10, min_lr_ratio=0.1))
    assert [factor(s) for s in (0, 5, 10)] == [0.0, 0.5, 1.0]
    assert factor(55) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factor(100) == pytest.approx(0.1)
    assert warmup_cosine(100, OptimizerSpec(warmup_ratio=0.03))(3) == 1.0  # warmup = round(0.03 * 100)


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    spec = text_spec(tmp_path)
    masking = get_registry().build("masking_strategies", spec.masking)
    grads = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = TrainingModel(build_model(spec, distributed.start("cpu")))
        if recompute:
            assert enable_gradient_checkpointing(model.backbone) == 2  # the two blocks
        batch = {"input_ids": torch.randint(0, 200, (2, 12)), "labels": torch.randint(0, 200, (2, 12)), "images": []}
        loss, _ = model(batch, masking, torch.Generator().manual_seed(1))
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


def test_activation_checkpointing_per_part_gives_the_same_gradients(tmp_path):
    """Backbone and vision encoder blocks recomputed (the trainer's own set-up) -> the same gradients."""
    grads = []
    for parts in ([], ["backbone", "vision"]):
        trainer = Trainer(shapes_spec(tmp_path, activation_checkpointing=parts), distributed.start("cpu"), True,
                          lambda message: None)
        blocks = [b for b in trainer.model.modules() if getattr(b, "_dvlm_checkpointed", False)]
        assert len(blocks) == (3 if parts else 0)  # 1 SigLIP layer (the last of 2 is cut) + 2 LLaDA blocks
        loss, _ = trainer.model(trainer.micro_batch(0, 0), trainer.masking, generator(0, "mask", 0, 0))
        loss.backward()
        grads.append({n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any(k.startswith("model.vision.") for k in grads[0])
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_autocast_on_gpu_keeps_fp32_weights_and_resumes_exactly(tmp_path):
    whole = train(text_spec(tmp_path / "a", steps=4, device="cuda"), progress=False)  # auto: bf16 on CUDA
    spec = text_spec(tmp_path / "b", steps=4, device="cuda")
    train(spec, stop_after=2, progress=False)
    resumed = train(spec, resume=True, progress=False)
    assert math.isfinite(whole.last_loss) and whole.last_loss == resumed.last_loss
    a, b = weights(whole.checkpoint), weights(resumed.checkpoint)
    assert all(t.dtype == torch.float32 for t in a.values())
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_epochs_set_the_run_length_from_the_data(tmp_path):
    result = train(text_spec(tmp_path, epochs=0.5), stop_after=1, progress=False)  # 48 rows, global batch 4
    assert (result.step, result.total_steps) == (1, 6)


def test_backbone_checkpoint_with_the_vision_parts_of_the_model_spec(tmp_path):
    """Stage 1 from a published backbone: init_from gives the LLaDA weights, `model` the vision parts."""
    from dvlm.core.checkpoint import save_pretrained

    torch.manual_seed(3)
    backbone = get_registry().build("backbones", get_registry().get("backbones", "llada").params.model_validate(
        shapes_spec(tmp_path / "probe").model.backbone.model_dump()))
    save_pretrained(backbone, tmp_path / "llada")
    spec = shapes_spec(tmp_path, init_from=str(tmp_path / "llada"), optimizer__frozen=["vision", "backbone"])
    trainer = Trainer(spec, distributed.start("cpu"), False, lambda message: None)
    assert trainer.model.is_multimodal
    assert all(torch.equal(a, b) for a, b in zip(trainer.vlm.backbone.state_dict().values(),
                                                   backbone.state_dict().values()))
    trainer.step(0)
