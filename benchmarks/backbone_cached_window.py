"""Milliseconds per LLaDA forward of a 32-token window over a 1,000-token KV cache (GPU, bf16).

The shape of a LaViDa Prefix-DLM / Fast-dLLM step: the prompt (image + text) is written to the cache
once, then every step runs only the answer window against it. LLaDA-8B dimensions, random weights.
Needs CUDA; ``--small`` runs a tiny shape anywhere (a smoke check, not a figure to report).
Last line: ``ms_per_forward=<x>``.

    .venv/bin/python benchmarks/backbone_cached_window.py [--prefix 1000 --window 32 --repeats 50]
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
from dvlm.core.checkpoint import skip_init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=int, default=1000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--small", action="store_true", help="tiny model on any device (smoke check)")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "backbone_cached_window.jsonl"))
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda and not args.small:
        sys.exit("needs a CUDA device (use --small for a CPU smoke check)")
    device = "cuda" if cuda else "cpu"

    kind = dvlm.registry().get("backbones", "llada")
    params = kind.params.for_tests().model_copy(update={"dtype": "bfloat16"}) if args.small else kind.params()
    with torch.device(device), skip_init():
        model = kind.factory(params).eval()
    generator = torch.Generator(device).manual_seed(0)
    for p in model.parameters():  # projections ~ N(0, 0.02), norm weights 1
        p.data.normal_(0.0, 0.02, generator=generator) if p.dim() > 1 else p.data.fill_(1.0)

    ids = torch.randint(0, params.vocab_size, (1, args.prefix + args.window), device=device, generator=generator)
    cache = model.new_cache(1, args.prefix + args.window)
    times = []
    with torch.inference_mode():
        model(ids[:, : args.prefix], cache=cache)
        for i in range(args.repeats + 5):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(ids[:, args.prefix :], cache=cache, cache_start=args.prefix)
            if cuda:
                torch.cuda.synchronize()
            if i >= 5:  # warm-up
                times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1e3
    device_name = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"{'tiny' if args.small else 'LLaDA-8B-shaped'} bf16 on {device_name}: window {args.window} over a "
          f"{args.prefix}-token cache, median of {args.repeats}: {ms:.2f} ms "
          f"(min {min(times) * 1e3:.2f}, max {max(times) * 1e3:.2f})")
    row = {"benchmark": "backbone_cached_window", "config": vars(args), "params": params.model_dump(),
           "metrics": {"ms_per_forward": ms, "ms_all": [t * 1e3 for t in times]}, **provenance()}
    if not args.small:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
    print(f"ms_per_forward={ms:.3f}")


if __name__ == "__main__":
    main()
