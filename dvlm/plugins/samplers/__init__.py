"""Built-in samplers and their registered parts.

- samplers: ``fixed_count`` (LLaDA / LaViDa / LLaDA-V / MMaDA remasking), ``dream`` (Dream and
  LaViDa-Dream), ``parallel`` (Fast-dLLM threshold / factor decoding), ``slowfast`` (SlowFast sampling,
  ``slowfast.py``);
- commit rules: ``fixed_count``, ``threshold``, ``factor`` (``commit.py``), ``entropy_bound`` (EB-Sampler,
  ``entropy_bound.py``);
- confidence measures: ``probability``, ``margin``, ``neg_entropy``, ``random`` (``confidence.py``);
- cache policies: ``none``, ``prefix`` (exact, LaViDa Prefix-DLM), ``fast_dllm_prefix``, ``dual``
  (``cache_policies.py``); ``dkv`` (dKV-Cache, ``dkv_cache.py``), ``drift_refresh`` (Elastic-Cache style,
  ``drift_cache.py``), ``suffix_pruning`` (DPad / Sparse-LaViDa, ``suffix_pruning.py``).

The three samplers run one shared denoising loop (``loop.py``): each contributes its blocks, its plan of
commits per step, its proposal convention and its default rule; ``commit_rule`` in any sampler spec swaps
the rule for any registered one. Schedules are their own plugin (``dvlm/plugins/schedules``). Only the
pydantic params are imported here.
"""

from __future__ import annotations

import dvlm
from dvlm.plugins.samplers.params import (
    DreamSamplerParams,
    DelayedCacheParams,
    DriftRefreshCacheParams,
    DualCacheParams,
    EntropyBoundRuleParams,
    FactorRuleParams,
    FastDllmPrefixCacheParams,
    FixedCountRuleParams,
    FixedCountSamplerParams,
    MarginParams,
    NegEntropyParams,
    NoCacheParams,
    ParallelSamplerParams,
    PrefixCacheParams,
    ProbabilityParams,
    RandomConfidenceParams,
    SlowFastSamplerParams,
    SuffixPruningCacheParams,
    ThresholdRuleParams,
)

_HERE = "dvlm.plugins.samplers"


@dvlm.hookimpl
def dvlm_register_samplers(register):
    register("fixed_count", f"{_HERE}.fixed_count:FixedCountSampler", FixedCountSamplerParams, aliases=("llada",))
    register("dream", f"{_HERE}.dream:DreamSampler", DreamSamplerParams)
    register("parallel", f"{_HERE}.parallel:ParallelSampler", ParallelSamplerParams, aliases=("fast_dllm",))
    register("slowfast", f"{_HERE}.slowfast:SlowFastSampler", SlowFastSamplerParams, aliases=("slow_fast",))


@dvlm.hookimpl
def dvlm_register_commit_rules(register):
    register("fixed_count", f"{_HERE}.commit:FixedCount", FixedCountRuleParams)
    register("threshold", f"{_HERE}.commit:Threshold", ThresholdRuleParams)
    register("factor", f"{_HERE}.commit:Factor", FactorRuleParams)
    register("entropy_bound", f"{_HERE}.entropy_bound:EntropyBound", EntropyBoundRuleParams, aliases=("eb_sampler",))


@dvlm.hookimpl
def dvlm_register_confidence_measures(register):
    register("probability", f"{_HERE}.confidence:Probability", ProbabilityParams,
             aliases=("low_confidence", "maskgit_plus"))
    register("margin", f"{_HERE}.confidence:Margin", MarginParams, aliases=("topk_margin",))
    register("neg_entropy", f"{_HERE}.confidence:NegEntropy", NegEntropyParams, aliases=("entropy",))
    register("random", f"{_HERE}.confidence:RandomConfidence", RandomConfidenceParams)


@dvlm.hookimpl
def dvlm_register_cache_policies(register):
    register("none", f"{_HERE}.cache_policies:NoCache", NoCacheParams)
    register("prefix", f"{_HERE}.cache_policies:PrefixCache", PrefixCacheParams, aliases=("prefix_dlm",))
    register("fast_dllm_prefix", f"{_HERE}.cache_policies:FastDllmPrefixCache", FastDllmPrefixCacheParams)
    register("dual", f"{_HERE}.cache_policies:DualCache", DualCacheParams, aliases=("fast_dllm_dual",))
    register("dkv", f"{_HERE}.dkv_cache:DelayedCache", DelayedCacheParams, aliases=("dkv_cache",))
    register("drift_refresh", f"{_HERE}.drift_cache:DriftRefreshCache", DriftRefreshCacheParams,
             aliases=("elastic_cache",))
    register("suffix_pruning", f"{_HERE}.suffix_pruning:SuffixPruningCache", SuffixPruningCacheParams,
             aliases=("dpad",))
