"""AnyRes preprocessing time / vision forward time, per image, for a SigLIP-so400m-shaped encoder on CPU.

Preprocessing is everything between the file bytes and the encoder's input for one image: JPEG decoding
(``load_image``), LaViDa's AnyRes views (best grid, letterbox, crops, base view) and normalisation
(``layout.views``). The forward is the so400m/14-384 tower cut at layer 26 (random weights) on those views.
Both are measured side by side in one run on the same image; the ratio says whether preprocessing could
become the bottleneck (goal: <= 0.10). Last line: ``preprocess_share=<preprocess_s / forward_s>``.

    .venv/bin/python benchmarks/vision_preprocess.py [--size 640x480 --layout anyres --repeats 20 --threads 0]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import dvlm
from dvlm.bench.provenance import provenance
from dvlm.core.image import load_image


def photo(width: int, height: int) -> bytes:
    """A JPEG with photo-like content (smooth gradients plus noise), so decoding costs what a photo costs."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x480", help="image WxH")
    parser.add_argument("--layout", default="anyres", choices=["anyres", "anyres_max"])
    parser.add_argument("--repeats", type=int, default=20, help="preprocessing repeats (median)")
    parser.add_argument("--forward-repeats", type=int, default=2, help="vision forward repeats (median)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "vision_preprocess.jsonl"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))

    registry = dvlm.registry()
    params = registry.get("vision_encoders", "siglip").params(init="random", dtype="float32")  # so400m/14-384
    torch.manual_seed(0)
    encoder = registry.build("vision_encoders", params).eval()
    layout = registry.build("image_layouts", registry.get("image_layouts", args.layout).params())
    data = photo(width, height)

    def preprocess() -> torch.Tensor:
        return layout.views(load_image(data), encoder.preprocess)[0]

    pixels = preprocess()
    pre_times = []
    for _ in range(args.repeats + 2):
        start = time.perf_counter()
        preprocess()
        pre_times.append(time.perf_counter() - start)
    pre_s = statistics.median(pre_times[2:])

    forward_times = []
    with torch.inference_mode():
        encoder(pixels[:1])  # warm-up
        for _ in range(args.forward_repeats):
            start = time.perf_counter()
            encoder(pixels)
            forward_times.append(time.perf_counter() - start)
    forward_s = statistics.median(forward_times)
    share = pre_s / forward_s

    print(f"SigLIP-so400m-shaped ({len(encoder.encoder.layers)} layers, fp32) on CPU, {torch.get_num_threads()} "
          f"threads; {width}x{height} JPEG, {args.layout}: {pixels.shape[0]} views")
    print(f"preprocess per image: {pre_s * 1e3:.1f} ms (median of {args.repeats})")
    print(f"vision forward per image: {forward_s * 1e3:.0f} ms (median of {args.forward_repeats})")
    row = {"benchmark": "vision_preprocess", "config": vars(args), "params": params.model_dump(mode="json"),
           "metrics": {"preprocess_s": pre_s, "forward_s": forward_s, "preprocess_share": share,
                       "views": int(pixels.shape[0])}, **provenance()}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"preprocess_share={share:.4f}")


if __name__ == "__main__":
    main()
