"""Peak memory of ``dvlm.load_pretrained`` on a sharded LLaDA (OLMo-layout) checkpoint.

Writes a random bf16 checkpoint of about 1.1 GB (6 shards + index + config.json, the layout of
GSAI-ML/LLaDA-8B) to a temporary folder, then loads it in a fresh process and reports the growth
of the resident set (peak minus the RSS after importing torch and dvlm) divided by the weight
bytes. For comparison, a naive loader is measured the same way: build the model with random init,
then ``load_state_dict(safetensors.torch.load_file(shard))`` shard by shard. Last line:
``load_peak_rss_ratio=<x>`` (goal <= 1.3).

    .venv/bin/python benchmarks/load_memory.py [--d-model 2048 --layers 8 --vocab 32000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def write_checkpoint(folder: Path, d: int, layers: int, mlp: int, vocab: int, shards: int) -> int:
    """A random LLaDA checkpoint with the published key names; returns the weight bytes."""
    from safetensors.torch import save_file

    shapes = {"model.transformer.wte.weight": (vocab, d)}
    for i in range(layers):
        b = f"model.transformer.blocks.{i}."
        shapes.update({b + "attn_norm.weight": (d,), b + "ff_norm.weight": (d,), b + "q_proj.weight": (d, d),
                       b + "k_proj.weight": (d, d), b + "v_proj.weight": (d, d), b + "attn_out.weight": (d, d),
                       b + "ff_proj.weight": (mlp, d), b + "up_proj.weight": (mlp, d), b + "ff_out.weight": (d, mlp)})
    shapes.update({"model.transformer.ln_f.weight": (d,), "model.transformer.ff_out.weight": (vocab, d)})
    keys = list(shapes)
    per_shard = -(-len(keys) // shards)
    weight_map, total = {}, 0
    generator = torch.Generator().manual_seed(0)
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        names = keys[s * per_shard : (s + 1) * per_shard]
        part = {k: (torch.randn(shapes[k], generator=generator) * 0.02).bfloat16() for k in names}
        save_file(part, folder / name, metadata={"format": "pt"})
        total += sum(t.numel() * t.element_size() for t in part.values())
        weight_map.update(dict.fromkeys(part, name))
        del part
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    config = {"model_type": "llada", "architectures": ["LLaDAModelLM"], "d_model": d, "n_heads": d // 128,
              "n_kv_heads": d // 128, "n_layers": layers, "mlp_hidden_size": mlp, "vocab_size": vocab,
              "embedding_size": vocab, "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "max_sequence_length": 4096,
              "mask_token_id": vocab - 3, "eos_token_id": vocab - 2, "pad_token_id": vocab - 2,
              "block_type": "llama", "activation_type": "silu", "layer_norm_type": "rms", "weight_tying": False,
              "rope": True, "rope_full_precision": True, "include_bias": False, "torch_dtype": "bfloat16"}
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return total


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(folder: str, how: str) -> None:
    """Child process: RSS growth while loading ``folder`` with ``how`` (printed as JSON)."""
    import dvlm

    dvlm.registry()
    from safetensors.torch import load_file

    from dvlm.core.checkpoint import detect_layout
    from dvlm.core.safetensors_io import shard_files

    baseline = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    if how == "dvlm":
        model = dvlm.load_pretrained(folder)
        held = sum(p.numel() * p.element_size() for p in model.parameters())
    else:  # a naive loader: random-init model in the stored dtype, then copy each shard in
        _, layout = detect_layout(Path(folder))
        reading = layout.read(Path(folder))
        model = dvlm.build(reading.spec)
        for file in shard_files(Path(folder)):
            model.load_state_dict({reading.rename(k): v for k, v in load_file(file).items()}, strict=False)
        held = sum(p.numel() * p.element_size() for p in model.parameters())
    print(json.dumps({"baseline": baseline, "peak": _status("VmHWM"), "held": held}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--mlp", type=int, default=5632)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "load_memory.jsonl"))
    parser.add_argument("--measure", nargs=2, metavar=("FOLDER", "HOW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(*args.measure)

    with tempfile.TemporaryDirectory() as tmp:
        weight_bytes = write_checkpoint(Path(tmp), args.d_model, args.layers, args.mlp, args.vocab, args.shards)
        results = {}
        for how in ("naive", "dvlm"):
            command = [sys.executable, __file__, "--measure", tmp, how]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            m = json.loads(out.stdout.strip().splitlines()[-1])
            assert m["held"] == weight_bytes, (how, m["held"], weight_bytes)
            results[how] = (m["peak"] - m["baseline"]) / weight_bytes
    from dvlm.bench.provenance import provenance

    print(f"checkpoint: {weight_bytes / 1e9:.2f} GB bf16 in {args.shards} shards (LLaDA OLMo layout)")
    print(f"peak RSS growth / weight bytes: naive (random init + load_state_dict of safetensors.load_file) "
          f"{results['naive']:.3f}, dvlm.load_pretrained {results['dvlm']:.3f}")
    row = {"benchmark": "load_memory", "config": {k: v for k, v in vars(args).items() if k != "measure"},
           "metrics": {"weight_bytes": weight_bytes, "load_peak_rss_ratio": results["dvlm"],
                       "naive_peak_rss_ratio": results["naive"]}, **provenance()}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"load_peak_rss_ratio={results['dvlm']:.3f}")


if __name__ == "__main__":
    main()
