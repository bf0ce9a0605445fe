"""A denoising step asks the host nothing (#15): it compiles with ``fullgraph=True`` (a ``.item()``, ``bool()``,
``nonzero()`` or data-dependent shape would break the graph and fail these tests), and a whole generation reads
the device only per block, not per step."""

import pytest
import torch
import torch._dynamo

import dvlm
from dvlm.core.generation import PromptBatch, run_sampler
from dvlm.core.sampler_specs import resolve_sampler
from dvlm.plugins.samplers import proposals
from dvlm.plugins.samplers.canvas import Canvas
from dvlm.plugins.samplers.loop import sample_step
from tests.samplers.conftest import prompts

SAMPLERS = {
    "fixed_count": {"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8},
    "fixed_count_margin_topk": {"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8,
                                "confidence": "margin", "top_k": 5, "suppress_tokens": ["eos"]},
    "dream": {"kind": "dream", "gen_length": 16, "steps": 8, "alg": "entropy", "top_p": 0.9},
    "parallel_threshold": {"kind": "parallel", "gen_length": 16, "block_length": 8, "threshold": 0.5},
    "parallel_factor": {"kind": "parallel", "gen_length": 16, "block_length": 8, "factor": 1.0},
}


def parts_of(model, spec):
    """The sampler's ``Parts`` as ``denoise`` receives them (captured from one real run)."""
    import dvlm.plugins.samplers.loop as loop

    captured = {}
    original = loop.denoise

    def capture(backbone, prompt, params, parts, generator=None):
        captured["parts"] = parts
        return (yield from original(backbone, prompt, params, parts, generator))

    loop.denoise = capture
    try:
        sampler = dvlm.registry().build("samplers", resolve_sampler(spec))
        module = __import__(type(sampler).__module__, fromlist=["denoise"])
        module.denoise, saved = capture, module.denoise
        try:
            run_sampler(model, PromptBatch(prompts(1, 6, seed=0)), sampler)
        finally:
            module.denoise = saved
    finally:
        loop.denoise = original
    return captured["parts"]


@pytest.mark.parametrize("name", SAMPLERS)
def test_the_sampling_step_compiles_without_a_graph_break(llada, dream, name):
    model = dream if name == "dream" else llada
    parts = parts_of(model, SAMPLERS[name])
    banned = torch.tensor([model.special_tokens.eos_id]) if "suppress" in str(SAMPLERS[name]) else torch.tensor([],
                                                                                                                dtype=torch.long)
    torch._dynamo.reset()
    step = torch.compile(sample_step(parts, banned, None), fullgraph=True, backend="eager")
    logits = torch.randn(2, 8, model.vocab_size, generator=torch.Generator().manual_seed(1))
    candidates = torch.tensor([[True, False, True, True, False, True, True, True], [False] * 4 + [True] * 4])
    count = None if name.startswith("parallel") else torch.tensor([2, 1])
    commit, x0, confidence = step(logits, candidates, count)  # raises on any graph break
    eager_commit, eager_x0, _ = sample_step(parts, banned, None)(logits, candidates, count)
    assert torch.equal(commit, eager_commit) and torch.equal(x0[commit], eager_x0[commit])
    assert not bool((commit & ~candidates).any()) and bool(commit.any(-1).all())


@pytest.mark.parametrize("cache", ["none", "prefix", "fast_dllm_prefix", "dual"])
def test_the_step_forward_compiles_without_a_graph_break(llada, dream, cache):
    """The backbone forward of every cache policy's steps (after the first step of a block) traces whole."""
    from dvlm.core.plugins import get_registry

    for model in (llada, dream):
        canvas = Canvas(model, PromptBatch(prompts(2, 7, seed=2)), 16)
        policy = get_registry().build("cache_policies", resolve_sampler({"kind": "fixed_count", "cache": cache}).cache)
        with torch.inference_mode():
            policy.start(canvas)
            policy.logits(canvas, 7, 15, True)  # the block's refresh (eager)
            torch._dynamo.reset()
            canvas.run_backbone = torch.compile(model, fullgraph=True, backend="eager")
            logits, offset = policy.logits(canvas, 7, 15, False)
        assert logits.shape == (2, 8, model.vocab_size) and offset == 7


def count_host_reads(monkeypatch):
    """Count the ways a tensor reaches the host: ``item``, ``tolist``, ``bool``, ``nonzero`` (CPU tensors
    included: on the CPU they cost nothing, on a GPU each one waits for the device)."""
    counts = {"reads": 0}
    for name in ("item", "tolist", "__bool__", "nonzero"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            counts["reads"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


@pytest.mark.parametrize("gen_length,blocks", [(16, 2), (32, 4)])
def test_host_reads_grow_with_blocks_not_steps(llada, monkeypatch, gen_length, blocks):
    """fixed_count with a schedule and the prefix cache: doubling the steps per block adds no host read (with the
    candidates on a device, as on a GPU: on the CPU the proposals read them, which syncs nothing)."""
    monkeypatch.setattr(proposals, "candidates_on_host", lambda candidates: False)
    reads = []
    for steps in (gen_length // 2, gen_length):
        spec = {"kind": "fixed_count", "gen_length": gen_length, "steps": steps,
                "block_length": gen_length // blocks, "cache": "prefix"}
        params = resolve_sampler(spec)
        sampler = dvlm.registry().build("samplers", params)
        with monkeypatch.context() as patched:
            counts = count_host_reads(patched)
            result = run_sampler(llada, PromptBatch(prompts(1, 6, seed=3)), sampler)
        reads.append(counts["reads"])
        assert result.nfe == 1 + steps
    assert reads[0] == reads[1], reads  # the same reads for twice the steps: none of them is per step


@pytest.mark.parametrize("spec", [
    {"kind": "fixed_count", "gen_length": 8, "steps": 4, "block_length": 4, "cache": "prefix"},
    {"kind": "parallel", "gen_length": 8, "block_length": 4, "threshold": 0.3, "cache": "dual"},
])
def test_compile_true_gives_the_same_tokens(llada, monkeypatch, spec):
    """``compile: true`` runs the step forward and the sampling under ``torch.compile`` (here with the fast
    ``aot_eager`` backend, the same graphs inductor would compile; the GPU benchmark runs inductor)."""
    import torch._dynamo.utils

    import dvlm.plugins.samplers.canvas as canvas

    monkeypatch.setattr(canvas, "COMPILE_OPTIONS", {"backend": "aot_eager"})
    torch._dynamo.reset()
    ids = PromptBatch(prompts(2, 6, seed=4))
    eager = run_sampler(llada, ids, resolve_sampler(spec))
    torch._dynamo.utils.counters.clear()
    fast = run_sampler(llada, ids, resolve_sampler({**spec, "compile": True}))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # the forward and the step were compiled
    assert torch.equal(fast.token_ids, eager.token_ids) and fast.nfe == eager.nfe
    assert dvlm.spec_hash(resolve_sampler({**spec, "compile": True})) == dvlm.spec_hash(resolve_sampler(spec))


@pytest.mark.slow
def test_compile_reduce_overhead_runs_inductor_and_gives_the_same_tokens(llada):
    """``compile: reduce-overhead`` is inductor's CUDA-graph mode (graphs on a GPU; on the CPU inductor alone): the
    real compiler, the same tokens (about 20 s of compilation)."""
    torch._dynamo.reset()
    spec = {"kind": "fixed_count", "gen_length": 8, "steps": 4, "block_length": 4, "cache": "prefix"}
    ids = PromptBatch(prompts(2, 6, seed=4))
    eager = run_sampler(llada, ids, resolve_sampler(spec))
    graphs = run_sampler(llada, ids, resolve_sampler({**spec, "compile": "reduce-overhead"}))
    assert torch.equal(graphs.token_ids, eager.token_ids) and graphs.nfe == eager.nfe


def test_reduce_overhead_reuses_the_kv_buffers_across_generations(llada, monkeypatch):
    """CUDA graphs replay into the addresses they recorded: under ``reduce-overhead`` each generation of a shape
    writes the same K/V buffers (reset), with the same tokens as fresh ones."""
    import dvlm.plugins.samplers.canvas as canvas

    monkeypatch.setattr(canvas, "COMPILE_OPTIONS", {"backend": "aot_eager"})
    monkeypatch.setattr(canvas, "REUSED_CACHES", __import__("weakref").WeakKeyDictionary())
    torch._dynamo.reset()
    spec = {"kind": "fixed_count", "gen_length": 8, "steps": 4, "block_length": 4, "cache": "prefix"}
    ids = PromptBatch(prompts(2, 6, seed=4))
    eager = run_sampler(llada, ids, resolve_sampler(spec))
    buffers = []
    for _ in range(2):
        graphs = run_sampler(llada, ids, resolve_sampler({**spec, "compile": "reduce-overhead"}))
        assert torch.equal(graphs.token_ids, eager.token_ids)
        (cache,) = canvas.REUSED_CACHES[llada].values()
        buffers.append(cache.keys[0].data_ptr())
    assert buffers[0] == buffers[1]
