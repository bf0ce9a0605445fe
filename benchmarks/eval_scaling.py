"""Evaluation throughput on CPU: samples/s of ``accelerate launch --num_processes 2`` ÷ one process, and of
``--batch_size 8`` ÷ ``--batch_size 1`` in one process, through the real lmms-eval CLI.

A small random-weight VLM (LLaDA backbone d_model 256, 4 layers; SigLIP 64 px; dvlm's tiny ASCII tokenizer)
answers the shipped ``dvlm_shapes_vqa`` task (``--limit`` documents, 8 answer tokens, 8 steps with the
``llada-reference`` sampler, which never stops early, so every request costs the same forwards). Three CLI
runs, one after the other: 1 process batch 1, 1 process batch 8, 2 processes batch 1 (``accelerate launch
--multi_gpu``: without GPUs accelerate needs it to start more than one process), every process
single-threaded. samples/s is the dvlm run summary's (requests / seconds inside the model, slowest rank);
the CLI wall time (imports, task loading, process start) is reported beside it. On a machine with fewer
free cores than processes the 2-process ratio stays near 1: the load average is recorded in the row.

    .venv/bin/python benchmarks/eval_scaling.py [--limit 32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import dvlm
from dvlm.bench.provenance import provenance
from dvlm.core.tiny_tokenizer import save_tiny_tokenizer_for
from dvlm.core.checkpoint import save_pretrained
from dvlm.eval import TASKS_DIR

MODEL = {
    "backbone": {"kind": "llada", "d_model": 256, "n_heads": 4, "n_kv_heads": 4, "n_layers": 4, "mlp_hidden_size": 1024,
                 "vocab_size": 256, "max_sequence_length": 512, "mask_token_id": 250, "eos_token_id": 251,
                 "pad_token_id": 251, "eot_token_id": 252, "bos_token_id": None, "dtype": "float32"},
    "vision_encoder": {"kind": "siglip", "init": "random", "image_size": 64, "patch_size": 8, "hidden_size": 128,
                       "intermediate_size": 512, "num_layers": 2, "num_heads": 4, "dtype": "float32"},
    "projector": {"kind": "mlp2x_gelu"},
    "image_layout": {"kind": "single"},
    "chat_template": {"kind": "llada", "system_prompt": None},
}
GEN_KWARGS = "steps=8"
TASK = "dvlm_shapes_vqa"


def run_cli(checkpoint: Path, out: Path, launcher: list[str], batch_size: int, limit: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(out / "hf"), "TOKENIZERS_PARALLELISM": "false"}
    command = [*launcher, "-m", "lmms_eval", "--model", "dvlm",
               "--model_args", f"pretrained={checkpoint},sampler=llada-reference", "--tasks", TASK,
               "--include_path", str(TASKS_DIR), "--batch_size", str(batch_size), "--limit", str(limit),
               "--gen_kwargs", GEN_KWARGS, "--output_path", str(out / "results"), "--verbosity", "DEBUG"]
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"lmms-eval failed ({' '.join(command)}):\n{done.stderr[-4000:]}")
    (summary_path,) = (out / "results").glob("**/*_dvlm_summary.json")
    summary = json.loads(summary_path.read_text())
    return {"launcher": launcher[-1] if len(launcher) == 1 else " ".join(launcher[2:]), "batch_size": batch_size,
            "world_size": summary["world_size"], "samples": summary["samples"], "model_seconds": summary["seconds"],
            "samples_per_s": summary["samples_per_s"], "cli_wall_s": wall,
            "nfe_mean": summary["tasks"][TASK]["nfe_mean"],
            "exact_match": summary["scores"][TASK]["exact_match,none"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=32, help="documents of dvlm_shapes_vqa per run (it has 80)")
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "eval_scaling.jsonl")
    args = parser.parse_args()
    torch.manual_seed(0)
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokenizer = save_tiny_tokenizer_for(root / "tokenizer", dvlm.build(MODEL).backbone.params)
        checkpoint = save_pretrained(dvlm.build({**MODEL, "tokenizer": str(tokenizer)}), root / "model")
        load_before = os.getloadavg()
        runs = {
            "1proc_batch1": run_cli(checkpoint, root / "a", [sys.executable], 1, args.limit),
            "1proc_batch8": run_cli(checkpoint, root / "b", [sys.executable], 8, args.limit),
            "2proc_batch1": run_cli(checkpoint, root / "c", accelerate, 1, args.limit),
        }
        load_after = os.getloadavg()
    base = runs["1proc_batch1"]["samples_per_s"]
    metrics = {
        "two_process_over_one": runs["2proc_batch1"]["samples_per_s"] / base,
        "batch8_over_batch1": runs["1proc_batch8"]["samples_per_s"] / base,
        "two_process_over_one_cli_wall": runs["1proc_batch1"]["cli_wall_s"] / runs["2proc_batch1"]["cli_wall_s"],
    }
    for name, run in runs.items():
        print(f"{name:14s} world {run['world_size']} batch {run['batch_size']}: {run['samples_per_s']:7.2f} samples/s "
              f"({run['samples']} in {run['model_seconds']:.2f} s in the model; CLI {run['cli_wall_s']:.1f} s), "
              f"NFE {run['nfe_mean']:.0f}")
    print(f"load average {load_before[0]:.2f} -> {load_after[0]:.2f} on {os.cpu_count()} cores")
    for name, value in metrics.items():
        print(f"{name}={value:.3f}")
    row = {"benchmark": "eval_scaling", "config": {"limit": args.limit, "task": TASK, "gen_kwargs": GEN_KWARGS,
                                                    "sampler": "llada-reference", "threads_per_process": 1},
           "model": MODEL, "runs": runs, "metrics": metrics,
           "load_average": {"before": load_before, "after": load_after}, **provenance()}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a") as out:
        out.write(json.dumps(row, default=str) + "\n")


if __name__ == "__main__":
    main()
