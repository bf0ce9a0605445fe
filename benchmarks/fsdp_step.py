"""Training step time, FSDP2 vs DDP, 2 CPU processes (gloo), the same tiny VLM and micro-batches.

One torchrun launch builds the run twice in each process, once per parallelism kind (``Trainer`` from
the same spec, ``parallelism.kind`` ddp or fsdp), and times full optimizer steps (forward, backward,
gradient reduction, clipping, AdamW) interleaved ``ddp fsdp fsdp ddp ...``, each between barriers. Both
kinds see the same examples and masks at the same step. The key figure is the median of the per-repeat
ratios. Last line: ``fsdp_ddp_step_ratio=<x>`` (goal <= 1.3).

    OMP_NUM_THREADS=1 .venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 2 \\
        benchmarks/fsdp_step.py [--d-model 256 --layers 4 --repeats 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.distributed as dist

from dvlm.bench.provenance import provenance
from dvlm.core.specs import parse_spec
from dvlm.train import distributed
from dvlm.train.loop import Trainer


def train_spec(args, kind: str) -> dict:
    heads = args.d_model // 64
    return {
        "model": {
            "backbone": {"kind": "llada", "d_model": args.d_model, "n_heads": heads, "n_kv_heads": heads,
                         "n_layers": args.layers, "mlp_hidden_size": 4 * args.d_model, "vocab_size": 256,
                         "mask_token_id": 250, "eos_token_id": 251, "pad_token_id": 251, "eot_token_id": 252,
                         "bos_token_id": None, "dtype": "float32"},
            "vision_encoder": {"kind": "siglip", "init": "random", "image_size": 64, "patch_size": 8,
                               "hidden_size": 64, "intermediate_size": 256, "num_layers": 2, "num_heads": 1,
                               "dtype": "float32"},
            "projector": {"kind": "mlp2x_gelu"}, "image_layout": {"kind": "single"},
            "chat_template": {"kind": "llada", "system_prompt": None},
        },
        "masking": {"kind": "complementary"},
        "data": {"synth_images": 40},
        "optimizer": {"lr": 1e-4, "warmup_steps": 0},
        "steps": args.repeats + 1, "global_batch_size": 2 * args.micro, "micro_batch_size": args.micro,
        "precision": "fp32", "device": "cpu", "parallelism": {"kind": kind},
        "eval": {"exact_match": False}, "out_dir": f"{args.out}/{kind}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--micro", type=int, default=4, help="examples per process and step (x2 rows)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default="runs/bench_fsdp_step")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "fsdp_step.jsonl"))
    args = parser.parse_args()

    processes = distributed.start("cpu")
    assert processes.world == 2, "run under torchrun --nproc-per-node 2"
    trainers = {kind: Trainer(parse_spec(train_spec(args, kind), as_type="train"), processes, False, lambda m: None)
                for kind in ("ddp", "fsdp")}
    times: dict[str, list[float]] = {kind: [] for kind in trainers}
    for kind, trainer in trainers.items():  # warm-up (lazy FSDP init, allocator)
        trainer.step(0)
    for r in range(args.repeats):
        for kind in (["ddp", "fsdp"] if r % 2 == 0 else ["fsdp", "ddp"]):
            dist.barrier()
            start = time.perf_counter()
            trainers[kind].step(r + 1)
            dist.barrier()
            times[kind].append(time.perf_counter() - start)
    ratio = statistics.median(f / d for f, d in zip(times["fsdp"], times["ddp"]))
    medians = {kind: statistics.median(t) * 1e3 for kind, t in times.items()}
    if processes.main:
        params = sum(p.numel() for p in trainers["ddp"].model.parameters())
        print(f"tiny VLM: {params / 1e6:.2f} M parameters (LLaDA D={args.d_model} x {args.layers}, SigLIP 64x2); "
              f"2 processes x {args.micro} examples (x2 complementary rows) per step, fp32, "
              f"threads/process={torch.get_num_threads()}")
        print(f"ddp median {medians['ddp']:.1f} ms, fsdp median {medians['fsdp']:.1f} ms over {args.repeats} "
              f"interleaved repeats")
        row = {"benchmark": "fsdp_step", "config": {k: v for k, v in vars(args).items() if k != "results"},
               "metrics": {"ddp_ms": medians["ddp"], "fsdp_ms": medians["fsdp"], "fsdp_ddp_step_ratio": ratio,
                           "ddp_ms_all": [t * 1e3 for t in times["ddp"]],
                           "fsdp_ms_all": [t * 1e3 for t in times["fsdp"]]}, **provenance()}
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"fsdp_ddp_step_ratio={ratio:.3f}")
    distributed.stop()


if __name__ == "__main__":
    main()
