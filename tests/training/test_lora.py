"""LoRA (peft): only adapters and the projector change; checkpoints hold them alone; merging (in memory
and through ``dvlm train --export``) gives the logits of the adapted model; a LoRA run resumes exactly."""

import pytest
import torch
from safetensors.torch import load_file

import dvlm
from dvlm.core.errors import CheckpointError, SpecError
from dvlm.train import distributed
from dvlm.train.export import export
from dvlm.train.loop import Trainer, train
from dvlm.train.lora import merge_lora
from tests.training.conftest import shapes_spec, text_spec

LORA = {"rank": 4, "alpha": 8, "parts": ["backbone", "vision"], "vision_target_modules": ["q_proj", "fc1"]}


def lora_spec(tmp_path, **overrides):
    return shapes_spec(tmp_path, lora=LORA, optimizer__frozen=[], **overrides)


def logits(trainer, ids):
    with torch.no_grad():
        return trainer.vlm.backbone(ids)


def test_lora_updates_only_adapters_and_projector_and_merges_to_the_same_logits(tmp_path):
    trainer = Trainer(lora_spec(tmp_path), distributed.start("cpu"), False, lambda message: None)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    for step in range(3):  # step 0 is warmup (lr 0); step 1 moves B away from 0, so step 2 moves A too
        trainer.step(step)
    after = trainer.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(".lora_A." in k for k in changed) and any(k.startswith("model.vision.") for k in changed)
    assert any(k.startswith("model.projector.") for k in changed)
    assert all(".lora_" in k or k.startswith("model.projector.") or k == "model.image_newline" for k in changed)

    folder = trainer.checkpoint(3)
    assert not (folder / "model.safetensors").exists()
    saved = load_file(str(folder / "adapter_model.safetensors"))
    assert saved and all(".lora_" in k or k.startswith("projector.") for k in saved)

    ids = torch.tensor([[5, 6, 7, 250, 250, 9]])
    adapted = logits(trainer, ids)
    exported = dvlm.load_pretrained(export(trainer.spec, tmp_path / "merged"), dtype="float32")
    before = (tmp_path / "merged" / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="--overwrite"):  # an export never replaces a checkpoint unasked
        export(trainer.spec, tmp_path / "merged")
    assert (tmp_path / "merged" / "model.safetensors").read_bytes() == before
    assert merge_lora(trainer.model) == 2 * 7 + 1 * 2  # 2 LLaDA blocks x 7 linears, 1 SigLIP layer x 2
    merged = logits(trainer, ids)
    assert not any(".lora_" in k for k in trainer.model.state_dict())
    assert torch.allclose(adapted, merged, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(exported.backbone(ids), adapted, atol=1e-5)


def test_lora_run_resumes_exactly(tmp_path):
    lora = {"rank": 4, "alpha": 8}
    whole = train(text_spec(tmp_path / "a", steps=4, lora=lora), progress=False)
    spec = text_spec(tmp_path / "b", steps=4, lora=lora)
    train(spec, stop_after=2, progress=False)
    resumed = train(spec, resume=True, progress=False)
    a = load_file(str(whole.checkpoint / "adapter_model.safetensors"))
    b = load_file(str(resumed.checkpoint / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lora_on_a_missing_layer_name_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="no linear layer named \\['o_proj'\\]"):
        Trainer(text_spec(tmp_path, lora={"target_modules": ["q_proj", "o_proj"]}), distributed.start("cpu"), False,
                lambda message: None)


def test_a_part_both_adapted_and_frozen_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match=r"\['vision'\] are in both lora.parts"):
        shapes_spec(tmp_path, lora={"parts": ["backbone", "vision"]}, optimizer__frozen=["vision"])
