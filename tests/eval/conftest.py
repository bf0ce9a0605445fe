"""A tiny vision-language model trained on the colour questions of the synthetic shapes data, shared by the
evaluation tests (the lmms-eval CLI, likelihood ranking, the web view).

Colour is the skill such a model learns first: with the settings below it answers every colour question of
the shipped test images after about 60 optimizer steps (shape, position and count take hundreds), so the
fixture trains on colour questions only, for 80 steps (about 20 s on 2 cores).
"""

import json
import os
import subprocess
import sys
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


LIMIT = 7
"""Documents per task in the CLI runs: odd, so two processes get unequal shares (4 and 3) and lmms-eval pads."""

LMMS_TASKS = "dvlm_shapes_vqa,dvlm_shapes_mc,dvlm_shapes_caption"
"""A generation, a likelihood and a caption task: the three kinds of request the shipped tasks make."""


def run_lmms_eval(checkpoint: Path, out: Path, launcher: list[str], tasks: str = LMMS_TASKS, limit: int = LIMIT,
                  batch_size: int = 3) -> tuple[dict, dict[str, list[dict]], dict | None, str]:
    """One offline lmms-eval CLI run: ``launcher + ["-m", "lmms_eval", ...]``. Returns ``(results, samples per
    task, dvlm run summary or None, log)``; fails the test unless it wrote exactly one results file."""
    from dvlm.eval import TASKS_DIR

    env = {**os.environ, **ONE_THREAD, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(out / "hf"),
           "TOKENIZERS_PARALLELISM": "false"}
    command = [
        *launcher, "-m", "lmms_eval", "--model", "dvlm",
        "--model_args", f"pretrained={checkpoint},sampler=llada-reference,mc_num=4,mc_batch_size=4",
        "--tasks", tasks, "--include_path", str(TASKS_DIR),
        "--batch_size", str(batch_size), "--limit", str(limit), "--gen_kwargs", "steps=8",
        "--output_path", str(out / "results"), "--log_samples",
        "--verbosity", "DEBUG",  # without it lmms-eval exits 0 even when the evaluation raised
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    results = sorted((out / "results").glob("**/*_results.json"))
    assert len(results) == 1, f"expected one results file, got {results}: {done.stderr[-3000:]}"
    samples = {path.name.split("_samples_")[1][: -len(".jsonl")]: [json.loads(l) for l in path.read_text().splitlines()]
               for path in results[0].parent.glob("*_samples_*.jsonl")}
    summaries = list(results[0].parent.glob("*_dvlm_summary.json"))
    summary = json.loads(summaries[0].read_text()) if summaries else None
    return json.loads(results[0].read_text()), samples, summary, log


@pytest.fixture(scope="package")
def cli_run(trained_checkpoint, tmp_path_factory):
    """One single-process ``python -m lmms_eval`` run over the three task kinds (``LIMIT`` documents each,
    batches of 3): the reference of the multi-process runs too."""
    pytest.importorskip("lmms_eval")
    return run_lmms_eval(trained_checkpoint, tmp_path_factory.mktemp("lmms"), [sys.executable])
