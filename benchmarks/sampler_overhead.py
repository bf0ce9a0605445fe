"""Sampler overhead: generate time / (NFE x forward time at the same shapes), medium random LLaDA on CPU.

A medium LLaDA (d_model 512, 4 layers, the real 126,464-token vocabulary, float32) generates with the
``llada-reference`` loop (no cache, one block, one token per step). Every forward inside a run is timed
by hooks (all have the same shape without a cache), so the ratio is generate time / (NFE x mean forward
time) of that very run and does not drift with the machine's load; standalone forwards of the same shape,
interleaved with the runs, are reported beside it. The ratio counts everything the
sampler adds per step: slicing the block, softmax and confidence over the vocabulary, ranking, committing,
the step event. Side by side, for the other samplers and caches the share of wall time spent outside the
backbone forward (wall / sum of forward times, measured by hooks in the same run).
Last line: ``sampler_overhead_ratio=<x>`` (goal <= 1.10).

    .venv/bin/python benchmarks/sampler_overhead.py [--prompt 32 --gen 32 --repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import dvlm
from dvlm.bench.provenance import provenance

sys_path = Path(__file__).resolve().parent
import sys  # noqa: E402

sys.path.insert(0, str(sys_path))
from _random_llada import random_llada, time_in_forward  # noqa: E402

SHAPE = dict(d_model=512, n_heads=8, n_kv_heads=8, n_layers=4, mlp_hidden_size=1536, vocab_size=126464,
             mask_token_id=126336, eos_token_id=126081, pad_token_id=126081, eot_token_id=126348,
             bos_token_id=126080)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--gen", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 by default: on a shared 2-core machine a second OpenMP thread "
                             "that another process preempts stalls every parallel region)")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "sampler_overhead.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = random_llada(**SHAPE)
    ids = torch.randint(0, 126000, (1, args.prompt), generator=torch.Generator().manual_seed(0))
    main_spec = {"kind": "fixed_count", "gen_length": args.gen, "steps": args.gen, "block_length": args.gen}
    full = torch.randint(0, 126000, (1, args.prompt + args.gen), generator=torch.Generator().manual_seed(1))

    calls, handles = time_in_forward(model)
    ratios, walls, standalone = [], [], []
    try:
        with torch.inference_mode():
            dvlm.generate(model, ids, sampler=main_spec)  # warm-up
            for _ in range(args.repeats):
                calls.clear()
                began = time.perf_counter()
                result = dvlm.generate(model, ids, sampler=main_spec)
                walls.append(time.perf_counter() - began)
                # every forward of this run has the same shape [1, prompt + gen]: NFE x their mean time
                ratios.append(walls[-1] / sum(calls))
                calls.clear()
                for _ in range(3):  # the same shape outside generate, interleaved (same machine load)
                    model(full)
                standalone.append(statistics.median(calls))
    finally:
        for h in handles:
            h.remove()
    nfe = result.nfe
    ratio = statistics.median(ratios)
    print(f"medium LLaDA (d 512, 4 layers, V 126464) fp32 on CPU ({torch.get_num_threads()} threads), "
          f"prompt {args.prompt} + answer {args.gen}, {args.repeats} runs:")
    print(f"  fixed_count/none (llada-reference loop): generate {statistics.median(walls):.3f} s, NFE {nfe}, "
          f"forward {statistics.median(standalone) * 1e3:.1f} ms standalone -> ratio vs in-run forwards "
          f"{ratio:.3f} (runs {', '.join(f'{r:.3f}' for r in ratios)}), vs standalone forwards "
          f"{statistics.median(walls) / (nfe * statistics.median(standalone)):.3f}")

    others = {
        "fixed_count/prefix": {**main_spec, "cache": "prefix"},
        "fixed_count/dual (4 blocks)": {**main_spec, "block_length": args.gen // 4, "cache": "dual"},
        "parallel/dual (fast-dllm)": {"kind": "parallel", "gen_length": args.gen, "block_length": args.gen // 4,
                                      "threshold": 0.9, "cache": "dual"},
        "dream/none (entropy)": {"kind": "dream", "gen_length": args.gen, "steps": args.gen, "alg": "entropy"},
    }
    side = {}
    for name, spec in others.items():
        calls, handles = time_in_forward(model)
        try:
            with torch.inference_mode():
                dvlm.generate(model, ids, sampler=spec)  # warm-up
                calls.clear()
                began = time.perf_counter()
                result = dvlm.generate(model, ids, sampler=spec)
                wall = time.perf_counter() - began
        finally:
            for h in handles:
                h.remove()
        side[name] = wall / sum(calls)
        print(f"  {name}: wall {wall:.3f} s / time in forward {sum(calls):.3f} s (NFE {result.nfe}) "
              f"-> {side[name]:.3f}")
    row = {"benchmark": "sampler_overhead", "config": vars(args), "shape": SHAPE, "spec": main_spec,
           "metrics": {"sampler_overhead_ratio": ratio, "ratios": ratios, "generate_s": walls,
                       "standalone_forward_s": standalone, "nfe": nfe, "wall_over_forward": side}, **provenance()}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"sampler_overhead_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
