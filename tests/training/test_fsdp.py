"""FSDP2 runs: 2 processes (torchrun, gloo) match 1 at the same global batch; sharded checkpoints resume
exactly, also on another number of processes; an interrupted save keeps the last good checkpoint; the
export is a dvlm checkpoint that ``dvlm.load_pretrained`` reads."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import dvlm
from dvlm.core.errors import TrainingError
from dvlm.cli import app
from dvlm.train import sharded_checkpoint
from dvlm.train.checkpointing import checkpoint_dirs
from dvlm.train.export import export
from dvlm.train.loop import train
from tests.training.conftest import text_spec

TOLERANCE = 1e-5
"""Max |weight difference| between runs on 1 and 2 processes. Both see the same micro-batches and masks
(data and masks are functions of (seed, step, micro-batch), not of the rank); in fp32 only the order of
floating-point sums differs (FSDP averages gradients by reduce-scatter over 2 shards instead of accumulating
2 micro-batches in one process), so after 4 AdamW steps at lr 3e-3 the weights agree to ~1e-7 rounding
noise amplified by Adam's normalisation, far below 1e-5 and far below one step's update (~3e-3)."""

FSDP = {"kind": "fsdp"}


def fsdp_spec(tmp_path, **overrides):
    return text_spec(tmp_path, steps=4, parallelism=FSDP, precision="fp32", **overrides)


def torchrun(tmp_path, spec, *args, nproc=2):
    spec_file = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.json"
    spec_file.write_text(json.dumps({"spec": "train", **spec.model_dump(mode="json", exclude={"spec"})}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
         "-m", "dvlm", "train", str(spec_file), "--no-progress", *args],
        capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def weights(spec, tmp_path, name):
    """The final weights of ``spec``'s run, through the export path."""
    out = export(spec, tmp_path / f"export-{name}")
    return load_file(str(out / "model.safetensors"))


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_fsdp_resume_is_exact_and_the_export_loads(tmp_path):
    whole = fsdp_spec(tmp_path / "whole")
    result = train(whole, progress=False)
    assert sharded_checkpoint.is_sharded(result.checkpoint)
    split = fsdp_spec(tmp_path / "split")
    first = train(split, stop_after=2, progress=False)
    assert first.step == 2
    second = train(split, resume=True, progress=False)
    assert (second.start_step, second.step) == (2, 4)
    a, b = weights(whole, tmp_path, "whole"), weights(split, tmp_path, "split")
    assert max_difference(a, b) == 0.0  # same world size: bit-identical

    spec_file = tmp_path / "whole.json"
    spec_file.write_text(json.dumps({"spec": "train", **whole.model_dump(mode="json", exclude={"spec"})}))
    cli = CliRunner().invoke(app, ["train", str(spec_file), "--export", str(tmp_path / "cli-export")])
    assert cli.exit_code == 0, cli.output
    assert load_file(str(tmp_path / "cli-export" / "model.safetensors")).keys() == a.keys()

    model = dvlm.load_pretrained(tmp_path / "export-whole", dtype="float32")
    ids = torch.tensor([[5, 6, 7, 250, 250]])
    own = {k.removeprefix("backbone."): v for k, v in a.items()}
    reference = dvlm.build(model.spec).backbone.eval()
    reference.load_state_dict(own)
    assert torch.equal(model.backbone(ids), reference(ids))


def test_interrupted_save_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    spec = fsdp_spec(tmp_path, checkpoint_every=1)
    train(spec, stop_after=2, progress=False)
    good = checkpoint_dirs(tmp_path / "run" / "checkpoints")[-1]
    real_save = sharded_checkpoint.dcp.save

    def crash_midway(state, checkpoint_id):
        real_save(state, checkpoint_id=checkpoint_id)
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(sharded_checkpoint.dcp, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        train(spec, resume=True, stop_after=1, progress=False)
    monkeypatch.undo()
    assert checkpoint_dirs(tmp_path / "run" / "checkpoints")[-1] == good  # the partial step-3 is not listed
    resumed = train(spec, resume=True, progress=False)
    assert (resumed.start_step, resumed.step) == (2, 4)


def test_cpu_offload_without_a_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(TrainingError, match="cpu_offload moves the shards from GPU to host memory"):
        train(text_spec(tmp_path, parallelism={"kind": "fsdp", "cpu_offload": True}), progress=False)


@pytest.mark.slow
def test_two_fsdp_processes_match_one_and_resume_on_another_world_size(tmp_path):
    one = fsdp_spec(tmp_path / "one")
    train(one, progress=False)
    reference = weights(one, tmp_path, "one")

    two = fsdp_spec(tmp_path / "two")
    run = torchrun(tmp_path, two)
    assert "step 4/4" in run.stdout
    two_weights = weights(two, tmp_path, "two")
    worst = max_difference(reference, two_weights)
    assert worst <= TOLERANCE, worst
    print(f"max |w_1proc - w_2proc| = {worst:.2e}")

    # interrupted after 2 steps on 2 processes, resumed on 2 (bit-exact) and on 1 (reshard)
    cut = fsdp_spec(tmp_path / "cut")
    torchrun(tmp_path, cut, "--stop-after", "2")
    moved = fsdp_spec(tmp_path / "moved")
    shutil.copytree(tmp_path / "cut" / "run", tmp_path / "moved" / "run")
    torchrun(tmp_path, cut, "--resume")
    assert max_difference(two_weights, weights(cut, tmp_path, "cut")) == 0.0
    resumed = train(moved, resume=True, progress=False)
    assert (resumed.start_step, resumed.step) == (2, 4)
    worst = max_difference(two_weights, weights(moved, tmp_path, "moved"))
    assert worst <= TOLERANCE, worst


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fsdp_bf16_with_checkpointing_on_gpu_keeps_fp32_shards(tmp_path):
    spec = text_spec(tmp_path, steps=3, parallelism=FSDP, precision="bf16", device="cuda",
                     activation_checkpointing=["backbone"])
    result = train(spec, progress=False)
    assert torch.isfinite(torch.tensor(result.last_loss))
    exported = load_file(str(export(spec, tmp_path / "export") / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in exported.values())  # bf16 compute, fp32 master weights
