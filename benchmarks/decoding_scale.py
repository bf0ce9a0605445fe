"""Decoding at the seeds' scale (#15), CPU: a LaViDa-shaped answer against its floor, the sampler's overhead,
``compile: true`` against eager, and the peak memory of an LLaDA-V-shaped no-cache step and of ``dvlm.score``.

1. LaViDa-shaped answer: the "medium" random LLaDA (d_model 512, 8 heads, 6 layers, MLP 1408, V 126,464,
   untied head, float32), 1,000 prompt tokens given as embeddings, ``lavida-coco`` (L = 32, one block, K = 16,
   shift alpha 0.33, exact prefix cache). The floor is the work no implementation can skip: a 1,000-token
   prefill without the LM head + 16 cached 32-token forwards with the head on the 32 rows, timed alone.
   dvlm, the floor and dvlm with ``compile: true`` alternate in one process (medians; minimums beside).
   ``sampler_overhead`` = generate time / the time its backbone forwards took (hooks, same run).
2. Peak memory (each measurement in a fresh child process: peak RSS during the call, reset just before it
   through ``/proc/self/clear_refs``, above the RSS before it), with a
   reduced width/depth so it fits here: one no-cache LLaDA-V-shaped step (P = 2,500, G = 128, V = 126,464,
   B = 4) against weights + KV/activations, and the old full-logits forward it replaces; ``dvlm.score`` of a
   LaViDa-shaped prompt (P = 1,000, a 6-token answer) against the old full-logits estimate (``before``) with
   the same masks, which must give the same score.

    .venv/bin/python benchmarks/decoding_scale.py [--repeats 3 --threads 2 --no-compile]

Last line: ``lavida_time_over_floor=<x> sampler_overhead=<y> compile_over_eager=<z> step_peak_over_budget=<a>
score_peak_ratio=<b>``. Rows go to ``benchmarks/results/decoding_scale.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _random_llada import random_llada, time_in_forward  # noqa: E402

TOKENS = dict(mask_token_id=126336, eos_token_id=126081, pad_token_id=126081, eot_token_id=126348,
              bos_token_id=126080)
MEDIUM = dict(d_model=512, n_heads=8, n_kv_heads=8, n_layers=6, mlp_hidden_size=1408, vocab_size=126464, **TOKENS)
REDUCED = dict(d_model=256, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=704, vocab_size=126464, **TOKENS)
LAVIDA_COCO = {"kind": "fixed_count", "gen_length": 32, "steps": 16, "block_length": 32, "cache": "prefix",
               "schedule": {"kind": "shift", "alpha": 0.33}}


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> float:
    """Reset the process's peak RSS (Linux: ``5`` > ``/proc/self/clear_refs``); returns the RSS now (MiB)."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def peak_mib() -> float:
    """Peak RSS since the last ``reset_peak`` (MiB)."""
    return _status_mib("VmHWM")


# -- 1. LaViDa-shaped answer -----------------------------------------------------------------------------

def floor_answer(model, embeds: torch.Tensor, gen: int, steps: int) -> None:
    """The unavoidable work: prefill without the head, then ``steps`` cached windows with the head on them."""
    prompt = embeds.shape[1]
    cache = model.new_cache(1, prompt + gen)
    model.hidden_states(inputs_embeds=embeds, cache=cache, attend_end=prompt, rows=slice(0, 0))
    window = torch.full((1, gen), MEDIUM["mask_token_id"])
    for _ in range(steps):
        model(window, cache=cache, cache_start=prompt, attend_end=prompt + gen)


def lavida_answer(args) -> dict:
    import dvlm
    from dvlm.core.generation import PromptBatch, run_sampler
    from dvlm.core.sampler_specs import resolve_sampler

    model = random_llada(**MEDIUM)
    embeds = torch.randn(1, args.prompt, MEDIUM["d_model"], generator=torch.Generator().manual_seed(0)) * 0.02
    prompt = PromptBatch(input_ids=None, inputs_embeds=embeds)
    eager, compiled = resolve_sampler(LAVIDA_COCO), resolve_sampler({**LAVIDA_COCO, "compile": True})
    walls: dict[str, list[float]] = {"dvlm": [], "floor": [], "overhead": []}
    runs = {"dvlm": lambda: run_sampler(model, prompt, eager), "floor": lambda: floor_answer(model, embeds, 32, 16)}
    tokens = {}
    compile_warmup = None
    if args.compile:
        runs["compile"] = lambda: run_sampler(model, prompt, compiled)
        walls["compile"] = []
    with torch.inference_mode():
        for name, run in runs.items():  # warm-up (compiles once)
            began = time.perf_counter()
            result = run()
            if name == "compile":
                compile_warmup = time.perf_counter() - began
            if result is not None:
                tokens[name] = result.token_ids
        for _ in range(args.repeats):
            for name, run in runs.items():
                # forward timers on the eager run only (a hook inside a compiled module would be traced)
                calls, handles = time_in_forward(model) if name == "dvlm" else ([], [])
                began = time.perf_counter()
                result = run()
                walls[name].append(time.perf_counter() - began)
                for h in handles:
                    h.remove()
                if name == "dvlm":
                    walls["overhead"].append(walls[name][-1] / sum(calls))
                    nfe = result.nfe
    same = torch.equal(tokens["compile"], tokens["dvlm"]) if "compile" in tokens else None  # None: not run
    median = {k: statistics.median(v) for k, v in walls.items()}
    out = {"walls_s": walls, "median_s": median, "nfe": nfe, "compile_same_tokens": same,
           "compile_warmup_s": compile_warmup,
           "time_over_floor": median["dvlm"] / median["floor"],
           "min_time_over_floor": min(walls["dvlm"]) / min(walls["floor"]),
           "sampler_overhead": median["overhead"],
           "compile_over_eager": median["compile"] / median["dvlm"] if "compile" in median else None,
           "spec": LAVIDA_COCO, "shape": MEDIUM}
    print(f"1. LaViDa-shaped answer (medium LLaDA, prompt {args.prompt} embeddings, lavida-coco, "
          f"{torch.get_num_threads()} threads, {args.repeats} alternating runs):")
    print(f"   dvlm {median['dvlm']:.3f} s (NFE {nfe}), floor {median['floor']:.3f} s -> time/floor "
          f"{out['time_over_floor']:.3f} (of minimums {out['min_time_over_floor']:.3f}); "
          f"sampler_overhead {out['sampler_overhead']:.3f}")
    if "compile" in median:
        print(f"   compile: true {median['compile']:.3f} s -> compile/eager {out['compile_over_eager']:.3f} "
              f"(same tokens: {same}; first call incl. compilation {compile_warmup:.1f} s)")
    return out


# -- 2. peak memory, each in a fresh process -------------------------------------------------------------

def _child(queue, what: str, options: dict) -> None:
    torch.set_num_threads(options["threads"])
    import dvlm
    from dvlm.core.generation import PromptBatch, run_sampler
    from dvlm.core.likelihood import answer_elbo, random_masks, stratified_counts
    from dvlm.core.sampler_specs import resolve_sampler

    model = random_llada(**REDUCED)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    batch = options.get("batch", 1)
    if what.startswith("step"):
        prompt_len, gen = 2500, 128
        embeds = torch.randn(batch, prompt_len, REDUCED["d_model"], generator=torch.Generator().manual_seed(0))
        spec = resolve_sampler({"kind": "fixed_count", "gen_length": gen, "steps": 1, "block_length": gen})
        base = reset_peak()
        with torch.inference_mode():
            if what == "step":
                run_sampler(model, PromptBatch(input_ids=None, inputs_embeds=embeds), spec)
            else:  # the old contract: the LM head on every row of the window
                ids = torch.full((batch, gen), REDUCED["mask_token_id"])
                model(inputs_embeds=torch.cat([embeds, model.embed(ids)], 1))
        queue.put({"peak_above_base_mib": peak_mib() - base, "weights_mib": weights / 2**20})
        return
    prompt_len, answer = 1000, torch.arange(100, 106)
    prefix = model.embed(torch.randint(0, 126000, (prompt_len,), generator=torch.Generator().manual_seed(1)))
    mc, rows = options["mc_num"], options["batch_size"]
    base = reset_peak()
    with torch.no_grad():
        if what == "score":
            value = answer_elbo(model, prefix, answer, mc_num=mc, batch_size=rows, seed=0)
        else:  # ``before``: the estimate as it was, full [b, P + A, V] logits
            import torch.nn.functional as F

            generator, total, length = torch.Generator().manual_seed(0), 0.0, len(answer)
            for _ in range(mc // rows):
                start = int(torch.randint(1, length + 1, (1,), generator=generator))
                counts = stratified_counts(length, rows, start)
                masked = random_masks(counts, length, generator)
                noised = torch.where(masked, torch.full_like(masked, REDUCED["mask_token_id"], dtype=torch.long),
                                     answer[None])
                logits = model(inputs_embeds=torch.cat([prefix[None].expand(rows, -1, -1), model.embed(noised)], 1))
                ce = F.cross_entropy(logits[:, prompt_len:].float().transpose(1, 2), answer[None].expand(rows, -1),
                                     reduction="none")
                total += float(((ce * masked).sum(-1) * (length / counts.float())).mean())
            value = -total / (mc // rows)
    queue.put({"peak_above_base_mib": peak_mib() - base, "weights_mib": weights / 2**20, "score": value})


def in_child(what: str, **options) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, what, options))
    process.start()
    result = queue.get()
    process.join()
    return result


def memory(args) -> dict:
    d, layers, mlp, vocab = (REDUCED[k] for k in ("d_model", "n_layers", "mlp_hidden_size", "vocab_size"))
    out = {"shape": REDUCED}
    step = in_child("step", threads=args.threads, batch=4)
    rows = 4 * (2500 + 128)
    # what a no-cache step must hold: the activations of one layer at a time (residual, q/k/v/attention out,
    # two MLP intermediates; the CPU attention is row by row, its scores [H, T, T] per row) + the block's logits
    activations = rows * (6 * d + 3 * mlp) * 4 + REDUCED["n_heads"] * (2500 + 128) ** 2 * 4 + 4 * 128 * vocab * 4
    step["budget_mib"] = (step["weights_mib"] * 2**20 + activations) / 2**20
    step["peak_over_budget"] = (step["peak_above_base_mib"] + step["weights_mib"]) / step["budget_mib"]
    step["full_logits_mib"] = rows * vocab * 4 / 2**20
    out["step"] = step
    old_step = in_child("step_full_logits", threads=args.threads, batch=1)
    out["step_full_logits_batch1"] = old_step
    score = in_child("score", threads=args.threads, mc_num=args.mc_num, batch_size=args.score_batch)
    before = in_child("score_before", threads=args.threads, mc_num=args.mc_num, batch_size=args.score_batch)
    out["score"], out["score_before"] = score, before
    out["score_peak_ratio"] = before["peak_above_base_mib"] / max(score["peak_above_base_mib"], 1.0)
    print(f"2. Peak memory (reduced LLaDA d {d} x {layers} layers, V {vocab}, fp32; fresh process each):")
    print(f"   no-cache LLaDA-V-shaped step (B 4, P 2500, G 128): peak {step['peak_above_base_mib']:.0f} MiB above "
          f"the loaded model ({step['weights_mib']:.0f} MiB weights); budget weights + activations "
          f"{step['budget_mib']:.0f} MiB -> {step['peak_over_budget']:.2f}x (the full logits alone would be "
          f"{step['full_logits_mib']:.0f} MiB; the old full-logits forward at B 1 peaked "
          f"{old_step['peak_above_base_mib']:.0f} MiB)")
    print(f"   dvlm.score (P 1000, A 6, mc {args.mc_num}, batch {args.score_batch}): peak "
          f"{score['peak_above_base_mib']:.0f} MiB vs before {before['peak_above_base_mib']:.0f} MiB -> "
          f"{out['score_peak_ratio']:.1f}x lower; scores {score['score']:.6f} vs {before['score']:.6f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--mc-num", type=int, default=8)
    parser.add_argument("--score-batch", type=int, default=4,
                        help="rows per Monte-Carlo batch (LLaDA: 16; 4 keeps the old path's logits at ~2 GB here)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "decoding_scale.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from dvlm.bench.provenance import provenance

    answer = lavida_answer(args)
    mem = None if args.skip_memory else memory(args)
    row = {"benchmark": "decoding_scale", "config": vars(args),
           "metrics": {"lavida_answer": answer, "memory": mem}, **provenance()}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")
    line = (f"lavida_time_over_floor={answer['time_over_floor']:.3f} sampler_overhead={answer['sampler_overhead']:.3f}"
            f" compile_over_eager={answer['compile_over_eager'] if answer['compile_over_eager'] is None else round(answer['compile_over_eager'], 3)}")
    if mem is not None:
        line += (f" step_peak_over_budget={mem['step']['peak_over_budget']:.2f}"
                 f" score_peak_ratio={mem['score_peak_ratio']:.1f}")
    print(line)


if __name__ == "__main__":
    main()
