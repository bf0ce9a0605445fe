"""A random-weight LLaDA of a given shape, for the sampler benchmarks (not a test fixture)."""

from __future__ import annotations

import torch

import dvlm
from dvlm.core.checkpoint import skip_init


def random_llada(device: str = "cpu", dtype: str = "float32", **shape):
    """LLaDA params (8B defaults overridden by ``shape``) with N(0, 0.02) projections and unit norms."""
    kind = dvlm.registry().get("backbones", "llada")
    params = kind.params(dtype=dtype, **shape)
    with torch.device(device), skip_init():
        model = kind.factory(params).eval()
    generator = torch.Generator(device).manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=generator) if p.dim() > 1 else p.fill_(1.0)
    return model


def time_in_forward(model):
    """Attach a timer to ``model``'s forward: returns (list of seconds per call, hook handles)."""
    import time

    calls: list[float] = []
    started: list[float] = []
    sync = torch.cuda.synchronize if next(model.parameters()).is_cuda else (lambda: None)

    def before(module, args, kwargs):
        sync()
        started.append(time.perf_counter())

    def after(module, args, kwargs, output):
        sync()
        calls.append(time.perf_counter() - started.pop())

    handles = [model.register_forward_pre_hook(before, with_kwargs=True),
               model.register_forward_hook(after, with_kwargs=True)]
    return calls, handles
