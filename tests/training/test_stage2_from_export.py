"""A stage-2 recipe started from a stage-1 export, as the recipe headers say (``--set init_from=<export>``,
``model`` kept): the export's backbone, vision encoder and projector weights, the recipe's image layout and
chat template; an architecture that does not match the export is a SpecError naming the part."""

import json
from pathlib import Path

import pytest
import torch

from dvlm.core.checkpoint import load_pretrained
from dvlm.core.errors import SpecError
from dvlm.train import distributed
from dvlm.train.cli import load_train_spec
from dvlm.train.export import export
from dvlm.train.loop import train
from dvlm.train.setup import build_model
from tests.training.conftest import TINY_LLADA
from tests.training.test_recipes import tiny
from tests.single_thread import one_thread  # noqa: F401  (autouse)

CPU = distributed.Processes(rank=0, world=1, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def stage1_export(tmp_path_factory):
    """lavida-stage1 shrunk, trained 2 steps and exported (single layout, plain template)."""
    root = tmp_path_factory.mktemp("stage1")
    spec = load_train_spec(Path("lavida-stage1"), tiny("lavida-stage1", root))
    train(spec, progress=False, log=lambda message: None)
    return export(spec, root / "export")


def stage2(tmp_path, export_folder, *extra, recipe="lavida-stage2"):
    return load_train_spec(Path(recipe), tiny(recipe, tmp_path, f"init_from={export_folder}", *extra))


def test_stage2_keeps_the_export_weights_with_the_recipes_layout_and_template(stage1_export, tmp_path):
    stored = load_pretrained(stage1_export, dtype="float32")
    assert stored.spec.image_layout.kind == "single" and stored.spec.chat_template.kind == "plain"
    assert stored.image_newline is None

    model = build_model(stage2(tmp_path, stage1_export), CPU)

    assert model.spec.image_layout.kind == "anyres" and model.image_layout.uses_newline
    assert model.spec.chat_template.kind == "llada"
    assert "<|start_header_id|>" in model.render("hi")  # the llada template, not plain
    weights = model.state_dict()
    for name, tensor in stored.state_dict().items():
        assert name.split(".")[0] in ("backbone", "vision", "projector")
        assert torch.equal(weights[name], tensor), name
    assert model.image_newline is not None and torch.isfinite(model.image_newline).all()  # fresh: anyres needs one


@pytest.mark.parametrize("recipe", ["lavida-stage2", "lavida-stage2-lora"])
def test_stage2_from_the_export_trains(stage1_export, tmp_path, recipe):
    result = train(stage2(tmp_path, stage1_export, recipe=recipe), progress=False, log=lambda message: None)
    assert result.step == 2 and torch.isfinite(torch.tensor(result.last_loss))


@pytest.mark.parametrize("override, part", [
    (f"model.backbone={json.dumps({**TINY_LLADA, 'n_layers': 3})}", "backbone"),
    ("model.projector={kind: linear}", "projector"),
])
def test_a_model_unlike_the_export_is_a_spec_error_naming_the_part(stage1_export, tmp_path, override, part):
    with pytest.raises(SpecError, match=rf"whole vision-language checkpoint whose {part} differs"):
        build_model(stage2(tmp_path, stage1_export, override), CPU)
