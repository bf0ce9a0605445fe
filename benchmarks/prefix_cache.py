"""Exact prefix cache (LaViDa Prefix-DLM) vs full recompute on a LaViDa-shaped workload, CPU.

1,000 prefix tokens (image + prompt), L = 32 answer tokens, K = 16 steps in one block (the ``lavida-coco``
setting), greedy, random-weight LLaDA scaled down from LLaDA-8B's proportions (MLP 3x width, LM head ~15% of
the per-token work). Both policies run interleaved in one process; the speedup is the ratio of the best
(minimum) wall times, the estimate least disturbed by other processes on a shared machine (medians are
printed beside it). The FLOP-ideal speedup counts the matmul FLOPs each policy executes (projections, MLP,
attention over the attended keys, and the LM head on every window position, the prefill's included, as
LaViDa does): full recompute = 16 forwards of 1,032 tokens; prefix = one 1,000-token prefill + 16 forwards of 32 tokens
against 1,032 keys. Efficiency = measured / ideal.
Last line: ``prefix_cache_speedup=<x> ideal=<y> efficiency=<x/y>`` (goal efficiency >= 0.8).

    .venv/bin/python benchmarks/prefix_cache.py [--prefix 1000 --gen 32 --steps 16 --repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import dvlm
from dvlm.bench.provenance import provenance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _random_llada import random_llada  # noqa: E402

SHAPE = dict(d_model=512, n_heads=8, n_kv_heads=8, n_layers=6, mlp_hidden_size=1536, vocab_size=8192,
             mask_token_id=8000, eos_token_id=8001, pad_token_id=8001, eot_token_id=8002, bos_token_id=8003)


def forward_flops(tokens: int, keys: int, shape: dict) -> float:
    """Matmul FLOPs (2 x MACs) of one LLaDA forward: ``tokens`` queries attending to ``keys`` keys, logits on all."""
    d, h, hkv, f, v = (shape[k] for k in ("d_model", "n_heads", "n_kv_heads", "mlp_hidden_size", "vocab_size"))
    head_dim = d // h
    projections = d * h * head_dim * 2 + d * hkv * head_dim * 2  # q, o and k, v
    attention = 2 * keys * h * head_dim  # scores and weighted values, per query
    per_layer = projections + 3 * d * f + attention
    return 2.0 * tokens * (shape["n_layers"] * per_layer + d * v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=int, default=1000)
    parser.add_argument("--gen", type=int, default=32)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 by default: on a shared 2-core machine a second OpenMP thread "
                             "that another process preempts stalls every parallel region)")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "prefix_cache.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = random_llada(**SHAPE)
    ids = torch.randint(0, 7999, (1, args.prefix), generator=torch.Generator().manual_seed(0))
    spec = {"kind": "fixed_count", "gen_length": args.gen, "steps": args.steps, "block_length": args.gen,
            "schedule": {"kind": "shift", "alpha": 1 / 3}}
    walls: dict[str, list[float]] = {"none": [], "prefix": []}
    nfe = {}
    with torch.inference_mode():
        for cache in walls:  # warm-up
            dvlm.generate(model, ids, sampler={**spec, "cache": cache})
        for _ in range(args.repeats):
            for cache in walls:
                began = time.perf_counter()
                result = dvlm.generate(model, ids, sampler={**spec, "cache": cache})
                walls[cache].append(time.perf_counter() - began)
                nfe[cache] = result.nfe
    total = args.prefix + args.gen
    flops = {
        "none": args.steps * forward_flops(total, total, SHAPE),
        "prefix": forward_flops(args.prefix, args.prefix, SHAPE) + args.steps * forward_flops(args.gen, total, SHAPE),
    }
    none, prefix = min(walls["none"]), min(walls["prefix"])
    speedup, ideal = none / prefix, flops["none"] / flops["prefix"]
    median_speedup = statistics.median(walls["none"]) / statistics.median(walls["prefix"])
    print(f"LLaDA-proportioned random model {SHAPE['d_model']}x{SHAPE['n_layers']} (V {SHAPE['vocab_size']}) fp32 "
          f"on CPU ({torch.get_num_threads()} threads); prefix {args.prefix}, L {args.gen}, K {args.steps}:")
    for cache in walls:
        print(f"  {cache:>6}: {min(walls[cache]):.3f} s per answer (NFE {nfe[cache]}, "
              f"{flops[cache] / 1e9:.1f} GFLOP, {flops[cache] / 1e9 / min(walls[cache]):.1f} GFLOP/s; "
              f"runs {', '.join(f'{w:.2f}' for w in walls[cache])})")
    print(f"  speedup {speedup:.2f}x (of medians {median_speedup:.2f}x), FLOP-ideal {ideal:.2f}x")
    row = {"benchmark": "prefix_cache", "config": vars(args), "shape": SHAPE, "spec": spec,
           "metrics": {"speedup": speedup, "median_speedup": median_speedup, "ideal": ideal,
                       "efficiency": speedup / ideal, "wall_s": walls,
                       "gflop": {k: v / 1e9 for k, v in flops.items()}, "nfe": nfe}, **provenance()}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"prefix_cache_speedup={speedup:.2f} ideal={ideal:.2f} efficiency={speedup / ideal:.2f}")


if __name__ == "__main__":
    main()
