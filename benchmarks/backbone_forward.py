"""dvlm LLaDA forward vs transformers LlamaModel + LM head of the same dimensions, on CPU.

Both models get the same weights (copied from dvlm into HF, which also checks that they compute
the same function), the same dtype and the same input; HF's attention is made bidirectional
(``is_causal=False`` on every layer, no mask), as LLaDA's is. Timings are interleaved (A B B A ...)
in one process; the ratio is the median of the per-repeat ratios. Last line: ``forward_time_ratio_vs_hf=<x>`` (goal <= 1.05).

    .venv/bin/python benchmarks/backbone_forward.py [--layers 4 --d-model 1024 --tokens 256 --repeats 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaModel

import dvlm
from dvlm.bench.provenance import provenance
from dvlm.core.dtypes import default_dtype, torch_dtype


def build_pair(args):
    params = dvlm.registry().get("backbones", "llada").params(
        d_model=args.d_model, n_heads=args.heads, n_kv_heads=args.heads, n_layers=args.layers,
        mlp_hidden_size=args.mlp, vocab_size=args.vocab, mask_token_id=0, eos_token_id=1, pad_token_id=1,
        eot_token_id=None, bos_token_id=None, rope_full_precision=False, dtype=args.dtype,
    )
    torch.manual_seed(0)
    ours = dvlm.registry().build("backbones", params).eval()
    config = LlamaConfig(
        hidden_size=args.d_model, num_attention_heads=args.heads, num_key_value_heads=args.heads,
        num_hidden_layers=args.layers, intermediate_size=args.mlp, vocab_size=args.vocab,
        rope_theta=params.rope_theta, rms_norm_eps=params.rms_norm_eps, attention_bias=False,
        tie_word_embeddings=False, attn_implementation="sdpa",
    )
    with default_dtype(torch_dtype(args.dtype)):  # not .to(dtype), which would round RoPE's inv_freq buffer
        hf = LlamaModel(config).eval()
        head = torch.nn.Linear(args.d_model, args.vocab, bias=False)
    for layer in hf.layers:
        layer.self_attn.is_causal = False
    names = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
             "attn_out": "self_attn.o_proj", "ff_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
             "ff_out": "mlp.down_proj", "attn_norm": "input_layernorm", "ff_norm": "post_attention_layernorm"}
    state = {"embed_tokens.weight": ours.wte.weight, "norm.weight": ours.ln_f.weight}
    for i, block in enumerate(ours.blocks):
        for ours_name, hf_name in names.items():
            state[f"layers.{i}.{hf_name}.weight"] = getattr(block, ours_name).weight
    hf.load_state_dict(state, strict=False)
    head.weight.data.copy_(ours.lm_head.weight)

    def hf_forward(ids):
        return head(hf(input_ids=ids).last_hidden_state)

    return ours, hf_forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--mlp", type=int, default=2816)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "backbone_forward.jsonl"))
    args = parser.parse_args()

    ours, hf_forward = build_pair(args)
    ids = torch.randint(0, args.vocab, (args.batch, args.tokens), generator=torch.Generator().manual_seed(1))
    runners = {"dvlm": lambda: ours(ids), "hf": lambda: hf_forward(ids)}
    times: dict[str, list[float]] = {"dvlm": [], "hf": []}
    with torch.inference_mode():
        max_diff = (runners["dvlm"]() - runners["hf"]()).abs().max().item()  # also the warm-up
        for name in runners:
            runners[name]()
        for r in range(args.repeats):
            for name in (["dvlm", "hf"] if r % 2 == 0 else ["hf", "dvlm"]):
                start = time.perf_counter()
                runners[name]()
                times[name].append(time.perf_counter() - start)
    dvlm_s, hf_s = statistics.median(times["dvlm"]), statistics.median(times["hf"])
    # each repeat times both models back to back, so the per-repeat ratio cancels slow drifts in
    # machine load (other processes on a shared CPU); the key figure is the median of those
    ratio = statistics.median(d / h for d, h in zip(times["dvlm"], times["hf"]))
    print(f"shape: B={args.batch} T={args.tokens} D={args.d_model} H={args.heads} layers={args.layers} "
          f"F={args.mlp} V={args.vocab} dtype={args.dtype} threads={torch.get_num_threads()}")
    print(f"max |logit difference| dvlm vs HF: {max_diff:.3g}")
    print(f"dvlm median {dvlm_s * 1e3:.1f} ms, HF median {hf_s * 1e3:.1f} ms over {args.repeats} interleaved repeats "
          f"(ratio of medians {dvlm_s / hf_s:.3f})")
    row = {"benchmark": "backbone_forward", "config": vars(args), "metrics": {
        "dvlm_ms": dvlm_s * 1e3, "hf_ms": hf_s * 1e3, "forward_time_ratio_vs_hf": ratio, "max_logit_diff": max_diff,
        "dvlm_ms_all": [t * 1e3 for t in times["dvlm"]], "hf_ms_all": [t * 1e3 for t in times["hf"]]},
        **provenance()}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"forward_time_ratio_vs_hf={ratio:.3f}")


if __name__ == "__main__":
    main()
