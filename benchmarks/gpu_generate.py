"""End-to-end generation speed on a GPU: LLaDA-8B-shaped random weights, bf16.

Two figures (issue #4), recorded in ``benchmarks/results/gpu_generate.jsonl``:

- LaViDa COCO shape: the image through a random SigLIP-so400m/14-384 (bf16; LaViDa's 5 views of 384 px), the
  mlp2x_gelu projector and LaViDa's 27x27 -> 14x14 bilinear pooling (980 image tokens), then the text up to 1,000
  prefix tokens; L = 32, K = 16, exact prefix cache, shift 1/3 (``lavida-coco``) -> seconds per answer, vision
  included, as LaViDa reports it (1.32 s per image on an A5000);
- Fast-dLLM shape: a 256-token answer with the ``fast-dllm`` preset (blocks of 32, tau 0.9, dual cache)
  -> ms per step (random weights give low confidences, so about one token per step: the per-step cost is
  the figure that transfers, not the step count).

Each preset runs eager, with ``compile: true`` (``torch.compile`` of the step forward and the sampling; the
first call, which compiles, is the warm-up) and with ``compile: reduce-overhead`` (the same plus CUDA graphs),
side by side; tokens per second = answer tokens / wall time.
Needs CUDA; ``--small`` runs a tiny model anywhere (a smoke check, not a figure to report; add
``--no-compile`` on a CPU, where inductor takes about a minute to compile even the tiny model).
Last line: ``lavida_coco_s_per_answer=<x> fast_dllm_ms_per_step=<y>``.

    .venv/bin/python benchmarks/gpu_generate.py [--repeats 5]
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


def lavida_prompt(model, device: str, small: bool, prefix: int):
    """``() -> PromptBatch`` of LaViDa's image prompt: 5 views -> SigLIP -> projector -> 14x14 bilinear pooling
    per view (980 tokens; fewer for the small encoder), then text ids up to ``prefix`` tokens. Random weights."""
    import torch.nn.functional as F

    from dvlm.core.generation import PromptBatch

    registry = dvlm.registry()
    params_class = registry.get("vision_encoders", "siglip").params
    params = (params_class.for_tests().model_copy(update={"dtype": "bfloat16"}) if small
              else params_class(init="random", dtype="bfloat16"))
    with torch.device(device):
        encoder = registry.build("vision_encoders", params).eval()
        projector = registry.build("projectors", registry.get("projectors", "mlp2x_gelu").params(),
                                   params.hidden_size, model.params.d_model).to(torch.bfloat16).eval()
    pixels = torch.randn(5, 3, params.image_size, params.image_size, device=device, dtype=torch.bfloat16)
    grid = params.image_size // params.patch_size
    pooled = (grid + 1) // 2  # 27 -> 14

    def prompt() -> PromptBatch:
        features = projector(encoder(pixels))  # [5, g*g, D]
        side = features.unflatten(1, (grid, grid)).permute(0, 3, 1, 2)  # [5, D, g, g]
        side = F.interpolate(side, size=(pooled, pooled), mode="bilinear")  # [5, D, 14, 14]
        image = side.flatten(2).transpose(1, 2).reshape(1, -1, side.shape[1])  # [1, 5*196, D]
        text = torch.randint(0, 126000, (1, max(prefix - image.shape[1], 1)), device=device,
                             generator=torch.Generator(device).manual_seed(0))
        return PromptBatch(input_ids=None, inputs_embeds=torch.cat([image, model.embed(text)], 1))

    return prompt


def timed(model, prompt, sampler, overrides, cuda):
    """Seconds for one answer (the image prompt's vision forward included) and its result."""
    from dvlm.core.generation import run_sampler
    from dvlm.core.sampler_specs import resolve_sampler

    if cuda:
        torch.cuda.synchronize()
    began = time.perf_counter()
    with torch.inference_mode():
        result = run_sampler(model, prompt(), resolve_sampler(sampler, overrides))
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - began, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--small", action="store_true", help="tiny model on any device (smoke check)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager only")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "gpu_generate.jsonl"))
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda and not args.small:
        sys.exit("needs a CUDA device (use --small for a CPU smoke check)")
    device = "cuda" if cuda else "cpu"
    shape = (dict(d_model=64, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=128) if args.small else {})
    model = random_llada(device=device, dtype="bfloat16", **shape)
    from dvlm.core.generation import PromptBatch

    ids = torch.randint(0, min(model.vocab_size, 126000), (1, args.prefix), device=device,
                        generator=torch.Generator(device).manual_seed(0))
    image_prompt = lavida_prompt(model, device, args.small, args.prefix)
    prompts = {"lavida-coco": image_prompt, "fast-dllm": lambda: PromptBatch(input_ids=ids)}
    runs = {
        "lavida-coco": ("lavida-coco", {}),
        "fast-dllm": ("fast-dllm", {"gen_length": 256}),
    }
    if args.compile:
        modes = {"compile": True, "cudagraphs": "reduce-overhead"} if cuda else {"compile": True}
        runs.update({f"{name}+{label}": (preset, {**overrides, "compile": mode})
                     for name, (preset, overrides) in list(runs.items()) for label, mode in modes.items()})
    metrics = {}
    with torch.inference_mode():
        for name, (preset, overrides) in runs.items():
            prompt = prompts[name.split("+")[0]]
            timed(model, prompt, preset, overrides, cuda)  # warm-up
            walls, result = [], None
            for _ in range(args.repeats):
                wall, result = timed(model, prompt, preset, overrides, cuda)
                walls.append(wall)
            metrics[name] = {"s_per_answer": statistics.median(walls), "nfe": result.nfe,
                             "ms_per_step": statistics.median(walls) / result.nfe * 1e3,
                             "tokens_per_forward": result.tokens_per_forward, "walls": walls,
                             "tokens_per_s": result.token_ids.shape[1] / statistics.median(walls)}
            print(f"{name}: {metrics[name]['s_per_answer']:.3f} s per answer, NFE {result.nfe}, "
                  f"{metrics[name]['ms_per_step']:.2f} ms per step, {metrics[name]['tokens_per_s']:.1f} tokens/s")
    row = {"benchmark": "gpu_generate", "config": vars(args), "metrics": metrics,
           "device": torch.cuda.get_device_name() if cuda else "cpu", **provenance()}
    if not args.small:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
    line = (f"lavida_coco_s_per_answer={metrics['lavida-coco']['s_per_answer']:.3f} "
            f"fast_dllm_ms_per_step={metrics['fast-dllm']['ms_per_step']:.2f}")
    if args.compile:
        line += (f" lavida_coco_compiled_s={metrics['lavida-coco+compile']['s_per_answer']:.3f}"
                 f" fast_dllm_compiled_tokens_per_s={metrics['fast-dllm+compile']['tokens_per_s']:.1f}")
        if cuda:
            line += (f" lavida_coco_cudagraphs_s={metrics['lavida-coco+cudagraphs']['s_per_answer']:.3f}"
                     f" fast_dllm_cudagraphs_tokens_per_s={metrics['fast-dllm+cudagraphs']['tokens_per_s']:.1f}")
    print(line)


if __name__ == "__main__":
    main()
