"""Params models of the built-in backbones (light: pydantic only, no torch).

Field names follow each model's published ``config.json`` (OLMo names for LLaDA, Qwen2 names for
Dream) so that a config can be read field by field. Defaults are the released 8B / 7B models;
``for_tests()`` gives a tiny configuration. Special-token ids live here and nowhere else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dvlm.core.specs import ComponentParams

DType = Literal["float32", "bfloat16", "float16"]


def _check_shapes(width: int, heads: int, kv_heads: int, vocab: int, tokens: dict) -> None:
    if width % heads:
        raise ValueError(f"the model width {width} is not divisible by the {heads} attention heads")
    if (width // heads) % 2:
        raise ValueError(f"the head width {width // heads} must be even for rotary embeddings")
    if heads % kv_heads:
        raise ValueError(f"{heads} attention heads cannot be shared among {kv_heads} key-value heads")
    for name, value in tokens.items():
        if value is not None and not 0 <= value < vocab:
            raise ValueError(f"{name}={value} is outside the vocabulary [0, {vocab})")


class LladaParams(ComponentParams):
    """LLaDA (OLMo-style Llama block, bidirectional). Defaults: GSAI-ML/LLaDA-8B-Instruct."""

    kind: Literal["llada"] = "llada"
    d_model: int = Field(4096, ge=2)
    """Model width D."""
    n_heads: int = Field(32, ge=1)
    """Query heads H; head width is ``d_model / n_heads``."""
    n_kv_heads: int = Field(32, ge=1)
    """Key-value heads (GQA when fewer than ``n_heads``)."""
    n_layers: int = Field(32, ge=1)
    """Transformer blocks."""
    mlp_hidden_size: int = Field(12288, ge=1)
    """SwiGLU hidden width (``ff_proj`` / ``up_proj`` outputs)."""
    vocab_size: int = Field(126464, ge=2)
    """Rows of the embedding and of the LM head (OLMo ``embedding_size``): the logits width V."""
    rope_theta: float = Field(500000.0, gt=0)
    """RoPE base θ."""
    rope_full_precision: bool = True
    """Rotate q/k in fp32 (OLMo original) instead of the activation dtype (LLaDA-V's Llama copy)."""
    rms_norm_eps: float = Field(1e-5, gt=0)
    """RMSNorm epsilon."""
    max_sequence_length: int = Field(4096, ge=1)
    """Context length the checkpoint declares (informational: RoPE has no table, longer inputs run)."""
    mask_token_id: int = Field(126336, ge=0)
    """``<|mdm_mask|>``: the diffusion mask token."""
    eos_token_id: int = Field(126081, ge=0)
    """``<|endoftext|>``."""
    pad_token_id: int = Field(126081, ge=0)
    """Padding token (LLaDA pads with EOS)."""
    eot_token_id: int | None = Field(126348, ge=0)
    """``<|eot_id|>``: end of an assistant turn (None if the tokenizer has none)."""
    bos_token_id: int | None = Field(126080, ge=0)
    """``<|startoftext|>``."""
    extra_token_ids: dict[str, int] = {}
    """Further named token roles, e.g. LaViDa's infilling tokens ``{"fim": ..., "fim_filler": ...}``."""
    dtype: DType = "bfloat16"
    """Weight and activation dtype."""

    @model_validator(mode="after")
    def _shapes(self) -> "LladaParams":
        _check_shapes(
            self.d_model, self.n_heads, self.n_kv_heads, self.vocab_size,
            {"mask_token_id": self.mask_token_id, "eos_token_id": self.eos_token_id,
             "pad_token_id": self.pad_token_id, "eot_token_id": self.eot_token_id,
             "bos_token_id": self.bos_token_id, **self.extra_token_ids},
        )
        return self

    @classmethod
    def for_tests(cls) -> "LladaParams":
        return cls(
            d_model=64, n_heads=4, n_kv_heads=2, n_layers=2, mlp_hidden_size=128, vocab_size=256,
            max_sequence_length=256, mask_token_id=250, eos_token_id=251, pad_token_id=251,
            eot_token_id=252, bos_token_id=None, dtype="float32",
        )


class DreamParams(ComponentParams):
    """Dream (Qwen2-style: q/k/v biases, GQA, shifted head). Defaults: Dream-org/Dream-v0-Instruct-7B."""

    kind: Literal["dream"] = "dream"
    hidden_size: int = Field(3584, ge=2)
    """Model width D."""
    intermediate_size: int = Field(18944, ge=1)
    """SwiGLU hidden width."""
    num_hidden_layers: int = Field(28, ge=1)
    """Transformer blocks."""
    num_attention_heads: int = Field(28, ge=1)
    """Query heads H."""
    num_key_value_heads: int = Field(4, ge=1)
    """Key-value heads (GQA)."""
    vocab_size: int = Field(152064, ge=2)
    """Rows of the embedding and of the LM head: the logits width V."""
    rope_theta: float = Field(1000000.0, gt=0)
    """RoPE base θ."""
    rms_norm_eps: float = Field(1e-6, gt=0)
    """RMSNorm epsilon."""
    max_position_embeddings: int = Field(32768, ge=1)
    """Context length the checkpoint declares (informational: RoPE has no table)."""
    mask_token_id: int = Field(151666, ge=0)
    """``<|mask|>``: the diffusion mask token."""
    eos_token_id: int = Field(151643, ge=0)
    """``<|endoftext|>``."""
    pad_token_id: int = Field(151643, ge=0)
    """Padding token."""
    eot_token_id: int | None = Field(151645, ge=0)
    """``<|im_end|>``: end of a chat turn (None if the tokenizer has none)."""
    bos_token_id: int | None = Field(151665, ge=0)
    """``<|beginoftext|>``."""
    extra_token_ids: dict[str, int] = {}
    """Further named token roles."""
    dtype: DType = "bfloat16"
    """Weight and activation dtype."""

    @model_validator(mode="after")
    def _shapes(self) -> "DreamParams":
        _check_shapes(
            self.hidden_size, self.num_attention_heads, self.num_key_value_heads, self.vocab_size,
            {"mask_token_id": self.mask_token_id, "eos_token_id": self.eos_token_id,
             "pad_token_id": self.pad_token_id, "eot_token_id": self.eot_token_id,
             "bos_token_id": self.bos_token_id, **self.extra_token_ids},
        )
        return self

    @classmethod
    def for_tests(cls) -> "DreamParams":
        return cls(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=256, max_position_embeddings=256, mask_token_id=250,
            eos_token_id=251, pad_token_id=251, eot_token_id=252, bos_token_id=None, dtype="float32",
        )
