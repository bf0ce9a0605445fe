"""``torchrun`` with 2 CPU processes (gloo) computes what one process does at the same global batch."""

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from dvlm.train.loop import train
from tests.training.conftest import text_spec

TOLERANCE = 1e-5
"""Max absolute weight difference allowed after the run. The two runs see the same micro-batches and
masks; only the order of floating-point sums differs (gradients averaged by all-reduce across processes
instead of accumulated in one), so the weights agree to rounding, not bit for bit."""


def test_two_processes_match_one_at_the_same_global_batch(tmp_path):
    # global batch 4 = micro 2 x (2 accumulation steps in 1 process | 1 step in each of 2 processes)
    single = train(text_spec(tmp_path / "one", steps=4), progress=False)
    spec = text_spec(tmp_path / "two", steps=4)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"spec": "train", **spec.model_dump(mode="json", exclude={"spec"})}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "dvlm", "train", str(spec_file), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "step 4/4" in run.stdout
    a = load_file(str(single.checkpoint / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "run" / "checkpoints" / "step-000004" / "model.safetensors"))
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= TOLERANCE, worst
    print(f"max |w_1proc - w_2proc| = {worst:.2e}")
    losses_one = [json.loads(l).get("loss") for l in (tmp_path / "one/run/metrics.jsonl").read_text().splitlines()]
    losses_two = [json.loads(l).get("loss") for l in (tmp_path / "two/run/metrics.jsonl").read_text().splitlines()]
    assert torch.allclose(torch.tensor([x for x in losses_one if x]), torch.tensor([x for x in losses_two if x]),
                          atol=1e-5)
