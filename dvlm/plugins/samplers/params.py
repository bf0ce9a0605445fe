"""Params models of the sampler family and of its parts (commit rules, confidence measures, cache policies).

Only pydantic here: ``dvlm/plugins/samplers/__init__.py`` imports this module while the registry is assembled.
Field names follow the references (LLaDA ``generate``, LaViDa ``generate``, Dream ``diffusion_generate``,
Fast-dLLM) so that their users recognise them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from dvlm.core.specs import ComponentParams, Family, non_semantic

# -- parts ---------------------------------------------------------------------------------------------


class ProbabilityParams(ComponentParams):
    """Probability of the chosen token (LLaDA ``low_confidence``, Dream ``maskgit_plus``)."""

    kind: Literal["probability"] = "probability"


class MarginParams(ComponentParams):
    """Top-1 minus top-2 probability (LLaDA ``margin``, Dream ``topk_margin``)."""

    kind: Literal["margin"] = "margin"


class NegEntropyParams(ComponentParams):
    """Negative entropy ``sum p log(p + 1e-10)`` (LLaDA ``entrophy``, Dream ``entropy``); higher = surer."""

    kind: Literal["neg_entropy"] = "neg_entropy"


class RandomConfidenceParams(ComponentParams):
    """Uniform random confidence (LLaDA ``random`` remasking)."""

    kind: Literal["random"] = "random"


class FixedCountRuleParams(ComponentParams):
    """Commit the ``k`` most confident candidates, ``k`` given by the schedule."""

    kind: Literal["fixed_count"] = "fixed_count"


class ThresholdRuleParams(ComponentParams):
    """Fast-dLLM: commit every candidate with confidence >= threshold, and always the most confident one."""

    kind: Literal["threshold"] = "threshold"
    threshold: float = Field(0.9, ge=0.0, le=1.0)
    """tau; Fast-dLLM's default is 0.9."""


class FactorRuleParams(ComponentParams):
    """Fast-dLLM / LLaDA-V factor rule: accept the sorted top n while ``c_(n) >= 1 - factor / (n + 1)``."""

    kind: Literal["factor"] = "factor"
    factor: float = Field(1.0, gt=0.0)
    """f; the forks' eval scripts use 1.0 (LLaDA-V's hook calls it ``threshold``)."""


class EntropyBoundRuleParams(ComponentParams):
    """EB-Sampler (arXiv:2505.24857): commit the lowest-entropy candidates while
    ``sum(H) - max(H) <= gamma``; needs the ``neg_entropy`` confidence (Dream: ``alg: entropy``)."""

    kind: Literal["entropy_bound"] = "entropy_bound"
    needs_confidence: ClassVar[str] = "neg_entropy"
    gamma: float = Field(0.1, gt=0.0)
    """The entropy bound: larger commits more per step (transformers' ``entropy_bound``, > 0)."""


class NoCacheParams(ComponentParams):
    """Full recompute of the whole sequence at every step (the reference behaviour)."""

    kind: Literal["none"] = "none"


class PrefixCacheParams(ComponentParams):
    """Exact prefix cache (LaViDa Prefix-DLM): the prompt (and image) K/V computed once, never attending to
    the answer; every step runs the answer window only."""

    kind: Literal["prefix"] = "prefix"


class FastDllmPrefixCacheParams(ComponentParams):
    """Fast-dLLM prefix cache: a full forward at each block start; within the block, steps run from the
    block start to the end against the (stale) K/V of everything before it. Approximate."""

    kind: Literal["fast_dllm_prefix"] = "fast_dllm_prefix"


class DualCacheParams(ComponentParams):
    """Fast-dLLM dual cache: a full forward at each block start; within the block, steps run the block only,
    against the stale K/V of the prefix and of the masked suffix. Approximate."""

    kind: Literal["dual"] = "dual"


class DelayedCacheParams(ComponentParams):
    """dKV-Cache-Decode (arXiv:2505.15781): decoded tokens' K/V cached one step after decoding, masked positions
    recomputed every step, a full refresh every ``refresh_interval`` steps. Approximate."""

    kind: Literal["dkv"] = "dkv"
    refresh_interval: Optional[int] = Field(8, ge=1)
    """Steps between full refreshes (the first step always is one); None = never again."""


class DriftRefreshCacheParams(ComponentParams):
    """Elastic-Cache-style (arXiv:2510.14973) refresh: rows recomputed as under ``dkv``, and a full refresh
    when a recomputed masked row's key drifted below ``similarity`` (cosine) or a block starts. Approximate."""

    kind: Literal["drift_refresh"] = "drift_refresh"
    similarity: float = Field(0.9, ge=-1.0, le=1.0)
    """Refresh when the lowest cosine similarity of a masked row's new vs cached key falls below this."""


class SuffixPruningCacheParams(ComponentParams):
    """DPad / Sparse-LaViDa: the exact prefix cache, and masked positions more than ``keep`` past the current
    block dropped from the forward. Approximate."""

    kind: Literal["suffix_pruning"] = "suffix_pruning"
    keep: int = Field(8, ge=0)
    """Masked positions kept after the current block (DPad's window)."""


# -- samplers ------------------------------------------------------------------------------------------


def _kind_shorthand(value: Any) -> Any:
    """``schedule: cosine`` (or ``--set cache=prefix``) means ``{kind: cosine}``."""
    return {"kind": value} if isinstance(value, str) else value


TokenRef = Union[int, str]
"""A token id, or the name of a role the backbone declares (``eos``, ``bos``, ``eot``, ``pad``, ``mask`` or an
``extra`` role such as ``start_header``); a trailing ``?`` makes a role optional (skipped if undeclared)."""


class _Decoding(ComponentParams):
    """Fields shared by every sampler."""

    kind: str
    gen_length: int = Field(128, ge=1)
    """Answer length G in tokens (LaViDa/Dream ``max_new_tokens``)."""
    temperature: float = Field(0.0, ge=0.0)
    """0 = greedy. The LLaDA family samples by float64 Gumbel-max; Dream samples from softmax(logits / T)."""
    top_p: Optional[float] = Field(None, gt=0.0, le=1.0)
    """Nucleus filter on the logits before sampling (None = off)."""
    top_k: Optional[int] = Field(None, ge=1)
    """Top-k filter on the logits before sampling (None = off)."""
    cache: Family["cache_policies"] = Field(default_factory=lambda: {"kind": "none"}, validate_default=True)
    """KV cache policy: none | prefix | fast_dllm_prefix | dual | dkv | drift_refresh | suffix_pruning."""
    suppress_tokens: tuple[TokenRef, ...] = ()
    """Tokens whose logits are set to -inf before anything is chosen (LLaDA-V bans eos, bos and the header
    tokens; LLaDA's ``logits_eos_inf`` bans eos). Ids or role names, see ``TokenRef``."""
    early_stop: bool = False
    """Stop a row once an end token (eot or eos) is committed and every position before it is filled; later
    positions become padding (LLaDA-V's stopping criteria)."""
    compile: Union[bool, Literal["reduce-overhead"]] = non_semantic(False)
    """Run each step (the backbone forward and the sampling) under ``torch.compile``: the same tokens, faster
    once compiled (the first steps pay the compilation). ``reduce-overhead``: also CUDA graphs on a GPU (each
    step's kernels replay as a graph; on the CPU the same as ``true``). Left out of the spec hash."""
    commit_rule: Optional[Family["commit_rules"]] = None
    """Which proposals a step commits; None = the sampler's own (fixed_count and dream: the schedule's count
    of the most confident; parallel: its threshold or factor). Any registered rule, a third party's too: it
    receives the schedule's count for the step (None under parallel, which has no schedule), and steps go
    on until the block is filled."""

    @field_validator("cache", "confidence", "schedule", "commit_rule", mode="before", check_fields=False)
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _kind_shorthand(value)

    @model_validator(mode="after")
    def _rule_reads_its_confidence(self) -> "_Decoding":
        """A rule that reads the confidence as a specific measure (``needs_confidence``, e.g. the entropy
        bound reads -entropy) is refused beside any other measure."""
        needed = getattr(self.commit_rule, "needs_confidence", None)
        if needed is None:
            return self
        confidence = getattr(self, "confidence", None)
        given = confidence.kind if confidence is not None else {"entropy": "neg_entropy"}.get(getattr(self, "alg", ""))
        if given != needed:
            raise ValueError(f"commit_rule '{self.commit_rule.kind}' reads the confidence as {needed}, but this "
                             f"sampler ranks by {given or getattr(self, 'alg', None)}; set confidence: {needed} "
                             "(dream: alg: entropy)")
        return self


class FixedCountSamplerParams(_Decoding):
    """LLaDA / LaViDa / LLaDA-V / MMaDA low-confidence remasking: semi-autoregressive blocks, a fixed number
    of commits per step from a schedule."""

    kind: Literal["fixed_count"] = "fixed_count"
    steps: Optional[int] = Field(None, ge=1)
    """Total denoising steps over all blocks (divided evenly among them). None = gen_length: one token per
    step, NFE 100% (LaViDa always uses this; it ignores its ``steps`` argument)."""
    block_length: Optional[int] = Field(None, ge=1)
    """Tokens per semi-autoregressive block; None or anything >= gen_length means one block. LaViDa's eval
    uses ``min(128, L)``: write 128."""
    step_ratio: Optional[float] = Field(None, gt=0.0, le=1.0)
    """LaViDa's NFE knob: steps per block become ``int(steps_per_block * step_ratio)``."""
    confidence: Family["confidence_measures"] = Field(
        default_factory=lambda: {"kind": "probability"}, validate_default=True)
    """How candidates are ranked: probability (LLaDA ``low_confidence``) | margin | neg_entropy | random."""
    schedule: Family["schedules"] = Field(default_factory=lambda: {"kind": "linear"}, validate_default=True)
    """Commits per step within a block: linear (LLaDA) | shift | cosine | logit_normal | linear_floor | dream."""
    cfg_scale: float = Field(0.0, ge=0.0)
    """Unsupervised classifier-free guidance (prompt masked): ``un + (s + 1)(cond - un)``; 0 = off."""

    @classmethod
    def for_tests(cls) -> "FixedCountSamplerParams":
        return cls(gen_length=8, steps=4, block_length=4)


class DreamSamplerParams(_Decoding):
    """Dream's ``diffusion_generate``: one window, Dream's timestep rule, ``alg`` picks the confidence."""

    kind: Literal["dream"] = "dream"
    gen_length: int = Field(256, ge=1)
    """Answer length G in tokens (Dream ``max_new_tokens``)."""
    steps: int = Field(256, ge=1)
    """Denoising steps (Dream's eval uses ``steps = max_new_tokens``)."""
    alg: Literal["origin", "maskgit_plus", "topk_margin", "entropy"] = "entropy"
    """origin: reveal each mask with probability 1 - s/t; otherwise the confidence used to rank masks."""
    alg_temp: Optional[float] = Field(None, ge=0.0)
    """None/0: commit the top-k; > 0: draw the k positions from softmax(confidence / alg_temp)."""
    eps: float = Field(1e-3, gt=0.0, lt=1.0)
    """Final timestep of ``linspace(1, eps, steps + 1)``."""
    schedule: Optional[Family["schedules"]] = None
    """None = Dream's timestep rule; a schedule kind (e.g. LaViDa-Dream's ``shift``) computed once at the start."""
    step_ratio: Optional[float] = Field(None, gt=0.0, le=1.0)
    """LaViDa-Dream's NFE knob: run ``int(gen_length * step_ratio)`` steps. Without a schedule the timesteps
    still come from ``steps`` and the last step commits everything left, exactly as LaViDa does."""

    @model_validator(mode="after")
    def _origin_has_no_schedule(self) -> "DreamSamplerParams":
        if self.alg == "origin" and self.schedule is not None:
            raise ValueError("alg 'origin' reveals each mask with probability 1 - s/t and takes no schedule; "
                             "set schedule: null or pick a confidence alg (maskgit_plus, topk_margin, entropy)")
        if self.commit_rule is not None and (self.alg == "origin" or self.alg_temp):
            raise ValueError("commit_rule picks the positions to commit, and so do alg 'origin' and alg_temp; "
                             "use a confidence alg (maskgit_plus, topk_margin, entropy) without alg_temp, or drop "
                             "commit_rule")
        return self

    @classmethod
    def for_tests(cls) -> "DreamSamplerParams":
        return cls(gen_length=8, steps=4)


class ParallelSamplerParams(_Decoding):
    """Fast-dLLM parallel decoding: per block, commit what the commit rule accepts (at least one token per
    step) until the block is filled; the step count adapts. Default rule: confidence threshold 0.9."""

    kind: Literal["parallel"] = "parallel"
    gen_length: int = Field(256, ge=1)
    """Answer length G in tokens."""
    block_length: int = Field(32, ge=1)
    """Tokens per block (Fast-dLLM's best trade-off is 32); clamped to gen_length."""
    commit_rule: Family["commit_rules"] = Field(
        default_factory=lambda: {"kind": "threshold", "threshold": 0.9}, validate_default=True)
    """Which proposals a step commits (no schedule here: the rule gets ``count=None``): threshold (Fast-dLLM,
    tau = 0.9) | factor | any registered rule."""
    threshold: Optional[float] = Field(None, ge=0.0, le=1.0)
    """Shorthand for ``commit_rule: {kind: threshold, threshold: tau}``."""
    factor: Optional[float] = Field(None, gt=0.0)
    """Shorthand for ``commit_rule: {kind: factor, factor: f}``."""
    confidence: Family["confidence_measures"] = Field(
        default_factory=lambda: {"kind": "probability"}, validate_default=True)
    """How candidates are ranked and thresholded (Fast-dLLM: probability)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand_to_commit_rule(cls, data: Any) -> Any:
        """``threshold: tau`` / ``factor: f`` become the commit rule (one canonical spec, one hash)."""
        if not isinstance(data, dict):
            return data
        given = {name: data[name] for name in ("threshold", "factor") if data.get(name) is not None}
        if not given:
            return data
        if len(given) > 1 or data.get("commit_rule") is not None:
            also = ", ".join([*given, *(["commit_rule"] if data.get("commit_rule") is not None else [])])
            raise ValueError(
                f"set the commit rule once (got {also}): threshold and factor are shorthands for commit_rule; "
                "e.g. --set commit_rule.threshold=0.8, or --set commit_rule=factor --set commit_rule.factor=1.0"
            )
        (name, value), = given.items()
        return {**data, name: None, "commit_rule": {"kind": name, name: value}}

    @classmethod
    def for_tests(cls) -> "ParallelSamplerParams":
        return cls(gen_length=8, block_length=4)


class SlowFastSamplerParams(_Decoding):
    """SlowFast sampling (arXiv:2506.10848): per block, a slow exploratory phase finds a stable span after the
    decoded prefix, a fast phase fills it in parallel; defaults are the reference implementation's."""

    kind: Literal["slowfast"] = "slowfast"
    gen_length: int = Field(128, ge=1)
    """Answer length G in tokens."""
    block_length: Optional[int] = Field(None, ge=1)
    """Tokens per block; None = one block (the reference runs block_length = gen_length)."""
    confidence: Family["confidence_measures"] = Field(
        default_factory=lambda: {"kind": "probability"}, validate_default=True)
    """How candidates are ranked and thresholded (the reference: probability)."""
    exploration_steps: int = Field(6, ge=1)
    """Slow steps before the span is fixed anyway (``k_exploration_steps``)."""
    span_confidence: float = Field(0.3, ge=0.0, le=1.0)
    """A masked position this confident extends the span estimate (``cycle_len_confidence_threshold``)."""
    stability_window: int = Field(2, ge=1)
    """Estimates whose spread decides convergence (``cycle_length_stability_window``)."""
    stability_std: float = Field(1.0, gt=0.0)
    """Converged when the estimates' population std is below this (``cycle_length_stability_std_dev_threshold``)."""
    high_confidence: float = Field(0.9, ge=0.0, le=1.0)
    """Commit every candidate this confident when there are at least two (``high_confidence_threshold``)."""

    @model_validator(mode="after")
    def _no_commit_rule(self) -> "SlowFastSamplerParams":
        if self.stability_window > self.exploration_steps:
            raise ValueError(f"stability_window={self.stability_window} exceeds exploration_steps="
                             f"{self.exploration_steps}: the span would be fixed before its estimates could converge; "
                             "lower stability_window or raise exploration_steps")
        if self.commit_rule is not None:
            raise ValueError("slowfast is its own phase-adaptive commit rule; drop commit_rule (or use the "
                             "parallel sampler with that rule)")
        return self

    @classmethod
    def for_tests(cls) -> "SlowFastSamplerParams":
        return cls(gen_length=8, block_length=4)
