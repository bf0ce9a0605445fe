"""CUDA paths (flash-attn when installed, SDPA otherwise); skipped without a GPU."""

import pytest
import torch

import dvlm
from dvlm.core import attention

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_cuda_bf16_forward_and_cache_match_cpu_fp32(kind):
    registry = dvlm.registry()
    params = registry.get("backbones", kind).params.for_tests()
    torch.manual_seed(0)
    cpu = registry.build("backbones", params).eval()
    gpu = registry.build("backbones", params.model_copy(update={"dtype": "bfloat16"})).cuda().eval()
    gpu.load_state_dict(cpu.state_dict())
    ids = torch.randint(0, params.vocab_size, (2, 40))
    with torch.no_grad():
        reference = cpu(ids)
        cache = gpu.new_cache(2, 40)
        gpu(ids[:, :24].cuda(), cache=cache)
        window = gpu(ids[:, 24:].cuda(), cache=cache, cache_start=24, attend_end=40)
        full = gpu(ids.cuda())
    torch.testing.assert_close(full.float().cpu(), reference, atol=0.15, rtol=0.05)
    # the window attends to the prefix K/V but the prefix did not see the window: compare with a
    # prefix-LM forward on the GPU itself
    with torch.no_grad():
        masked = gpu(ids.cuda(), attention_mask=attention.prefix_lm_mask(torch.tensor([24, 24]).cuda(), 40))
    torch.testing.assert_close(window, masked[:, 24:], atol=0.1, rtol=0.05)


@pytest.mark.skipif(attention._flash_attn_func() is None, reason="flash-attn not installed")
def test_flash_attention_matches_sdpa():
    q = torch.randn(2, 8, 64, 64, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(2, 2, 96, 64, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(2, 2, 96, 64, device="cuda", dtype=torch.bfloat16)
    flash = attention.attend(q, k, v, None)
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    torch.testing.assert_close(flash, sdpa, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("spec", [
    {"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8, "cache": "prefix", "early_stop": True},
    {"kind": "parallel", "gen_length": 16, "block_length": 8, "threshold": 0.5, "cache": "dual"},
    {"kind": "dream", "gen_length": 16, "steps": 8, "cache": "prefix"},
])
def test_cuda_graphs_and_the_late_early_stop_flag_give_eager_tokens(spec):
    """``compile: reduce-overhead`` (CUDA graphs, the KV buffers reused across generations) and early stop's
    previous-step flag give the eager tokens, twice in a row (the second run replays the recorded graphs)."""
    from dvlm.core.generation import PromptBatch, run_sampler
    from dvlm.core.sampler_specs import resolve_sampler

    kind = "dream" if spec["kind"] == "dream" else "llada"
    registry = dvlm.registry()
    params = registry.get("backbones", kind).params.for_tests()
    torch.manual_seed(0)
    model = registry.build("backbones", params).cuda().eval()
    prompt = PromptBatch(torch.randint(0, params.vocab_size - 8, (2, 12)).cuda())
    eager = run_sampler(model, prompt, resolve_sampler(spec))
    for _ in range(2):
        graphs = run_sampler(model, prompt, resolve_sampler({**spec, "compile": "reduce-overhead"}))
        assert torch.equal(graphs.token_ids, eager.token_ids)
