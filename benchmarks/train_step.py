"""Training step time: LaViDa complementary masking vs LLaDA uniform masking, CPU, same LM rows per step.

Both run full optimizer steps (forward, backward, AdamW) of the same tiny VLM (SigLIP-style encoder, MLP
projector, LLaDA backbone) on the synthetic shapes data, with the same number of sequences through the
language model: complementary takes B/2 examples x 2 noised copies (the vision encoder runs once, on B/2
images), uniform takes B examples x 1 copy. Steps are interleaved (A B B A ...) in one process; the key
figure is the median of the per-repeat time ratios. Last line: ``complementary_step_ratio=<x>`` (goal <= 1.08).

    .venv/bin/python benchmarks/train_step.py [--rows 16 --repeats 20 --d-model 256 --layers 4 --vision-width 64 --vision-layers 2]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dvlm.bench.provenance import provenance
from dvlm.core.plugins import get_registry
from dvlm.core.specs import parse_spec
from dvlm.core.vlm import build
from dvlm.data.batching import collate
from dvlm.data.encode import IMAGE_SLOT, ConversationEncoder
from dvlm.data.llava import load_llava
from dvlm.data.synth_shapes import write_synth_shapes
from dvlm.train.model import TrainingModel


def model_spec(args) -> dict:
    heads = args.d_model // 64
    return {
        "backbone": {"kind": "llada", "d_model": args.d_model, "n_heads": heads, "n_kv_heads": heads,
                     "n_layers": args.layers, "mlp_hidden_size": 4 * args.d_model, "vocab_size": 256,
                     "mask_token_id": 250, "eos_token_id": 251, "pad_token_id": 251, "eot_token_id": 252,
                     "bos_token_id": None, "dtype": "float32"},
        "vision_encoder": {"kind": "siglip", "init": "random", "image_size": 64, "patch_size": 8,
                           "hidden_size": args.vision_width, "intermediate_size": 4 * args.vision_width,
                           "num_layers": args.vision_layers, "num_heads": args.vision_width // 64, "dtype": "float32"},
        "projector": {"kind": "mlp2x_gelu"},
        "image_layout": {"kind": "single"},
        "chat_template": {"kind": "llada", "system_prompt": None},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16, help="sequences through the LM per step (even)")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vision-width", type=int, default=64)
    parser.add_argument("--vision-layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "train_step.jsonl"))
    args = parser.parse_args()

    torch.manual_seed(0)
    spec = parse_spec(model_spec(args), as_type="model")
    with tempfile.TemporaryDirectory() as folder:
        from dvlm.core.tiny_tokenizer import save_tiny_tokenizer_for
        from dvlm.core.tokenizer import load_tokenizer

        vlm = build(spec)
        vlm.tokenizer = load_tokenizer(save_tiny_tokenizer_for(Path(folder) / "tok", vlm.backbone.params))
        write_synth_shapes(Path(folder) / "data", n=40, seed=0)
        records, _ = load_llava(Path(folder) / "data" / "train.json")
        encoder = ConversationEncoder(vlm.tokenizer, vlm.chat_template, vlm.special_tokens, image_token_id=IMAGE_SLOT)
        examples = [encoder(r, random.Random(i)) for i, r in enumerate(records[: args.rows])]
        eos = vlm.special_tokens.eos_id
        model = TrainingModel(vlm).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        registry = get_registry()
        cases = {
            "complementary": (registry.build("masking_strategies", registry.get("masking_strategies",
                              "complementary").params()), collate(examples[: args.rows // 2], eos)),
            "uniform": (registry.build("masking_strategies", registry.get("masking_strategies", "uniform").params()),
                        collate(examples, eos)),
        }

        def step(name: str, seed: int) -> int:
            masking, batch = cases[name]
            optimizer.zero_grad(set_to_none=True)
            loss, noised = model(batch, masking, torch.Generator().manual_seed(seed))
            loss.backward()
            optimizer.step()
            return noised.masked.shape[0]

        rows = {name: step(name, 0) for name in cases}  # warm-up; also checks the row counts
        assert rows["complementary"] == rows["uniform"] == args.rows, rows
        times: dict[str, list[float]] = {name: [] for name in cases}
        for r in range(args.repeats):
            for name in (["complementary", "uniform"] if r % 2 == 0 else ["uniform", "complementary"]):
                start = time.perf_counter()
                step(name, r + 1)
                times[name].append(time.perf_counter() - start)
    ratio = statistics.median(c / u for c, u in zip(times["complementary"], times["uniform"]))
    medians = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    lengths = {name: batch["input_ids"].shape[1] + 63 for name, (_, batch) in cases.items()}  # 64 tokens per slot
    print(f"shape: {args.rows} LM rows/step of {lengths['complementary']} (complementary) / {lengths['uniform']} "
          f"(uniform) tokens, D={args.d_model} layers={args.layers}, vision "
          f"{args.vision_width}x{args.vision_layers} (64 tokens/image), threads={torch.get_num_threads()}")
    print(f"complementary ({args.rows // 2} examples x 2 copies) median {medians['complementary']:.1f} ms, uniform "
          f"({args.rows} examples) median {medians['uniform']:.1f} ms over {args.repeats} interleaved repeats")
    row = {"benchmark": "train_step", "config": vars(args), "metrics": {
        "complementary_ms": medians["complementary"], "uniform_ms": medians["uniform"],
        "complementary_step_ratio": ratio, "complementary_ms_all": [t * 1e3 for t in times["complementary"]],
        "uniform_ms_all": [t * 1e3 for t in times["uniform"]]}, **provenance()}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"complementary_step_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
