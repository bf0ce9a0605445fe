"""The package's model family end to end, through dvlm's public API only: a ``toy-lab`` folder loads with
``dvlm.load_pretrained``, generates with a stock sampler, converts to a dvlm checkpoint and back."""

import json
import subprocess
import sys

import torch

import dvlm
from dvlm.testing import check_layout_round_trip


def toy_folder(folder):
    """A ``toy-lab`` folder with random weights, written by the layout itself."""
    torch.manual_seed(0)
    model = dvlm.build({"backbone": {"kind": "toy_mdm"}})
    for parameter in model.parameters():  # sharp weights: answers depend on the inputs
        parameter.data.normal_(0, 0.5)
    from dvlm.core.checkpoint import get_layout

    get_layout("toy-lab").write(model, folder)
    return model


def test_a_toy_lab_folder_loads_and_generates_with_a_stock_sampler(tmp_path):
    toy_folder(tmp_path / "toy")
    assert json.loads((tmp_path / "toy" / "config.json").read_text())["model_type"] == "toy_mdm"
    model = dvlm.load_pretrained(tmp_path / "toy")
    assert model.spec.backbone.kind == "toy_mdm"
    out = dvlm.generate(model, input_ids=[[1, 2, 3, 4]], sampler="llada-reference",
                        overrides=["gen_length=8", "steps=4", "block_length=8"])
    assert out.token_ids.shape == (1, 8) and out.nfe == 4


def test_converts_to_a_dvlm_checkpoint_and_back(tmp_path):
    original = toy_folder(tmp_path / "toy")
    dvlm_cli = [sys.executable, "-m", "dvlm", "convert"]
    subprocess.run([*dvlm_cli, str(tmp_path / "toy"), str(tmp_path / "dvlm")], check=True, capture_output=True)
    subprocess.run([*dvlm_cli, str(tmp_path / "dvlm"), str(tmp_path / "back"), "--to", "toy-lab"], check=True,
                   capture_output=True)
    ids = torch.randint(0, 250, (2, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for folder in ("dvlm", "back"):
            assert torch.equal(dvlm.load_pretrained(tmp_path / folder)(ids), original(ids)), folder


def test_the_layout_round_trip_of_dvlm_s_conformance_kit(tmp_path):
    check_layout_round_trip("toy-lab", toy_folder(tmp_path / "toy"), tmp_path / "again")
