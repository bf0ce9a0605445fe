"""LLaDA: a bidirectional Llama-style transformer that predicts masked tokens (no logit shift).

Follows the OLMo-derived ``LLaDALlamaBlock`` of GSAI-ML/LLaDA-8B: pre-norm RMSNorm (fp32 inside),
q/k/v projections without bias, RoPE, attention with no causal mask, ``attn_out``, then the
SwiGLU MLP ``ff_out(silu(ff_proj(h)) * up_proj(h))`` (``ff_proj`` is the gate), a final
``ln_f`` and an untied LM head. Module names are the OLMo ones, so the published checkpoint maps
onto this model by dropping the ``model.transformer.`` prefix (the head ``transformer.ff_out`` is
renamed ``lm_head`` because the blocks also have an ``ff_out``).

Shape legend:
    B batch   T window tokens   S attended keys   D d_model   F mlp_hidden_size   V vocab
    H heads   Hkv kv heads      Dh head width (D / H)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dvlm.core.attention import attend
from dvlm.core.dtypes import default_dtype, torch_dtype
from dvlm.core.forward_window import Window, embed_inputs
from dvlm.core.interfaces import SpecialTokens
from dvlm.core.kv_cache import KVCache
from dvlm.core.norm import RMSNorm
from dvlm.core.rope import apply_rope, rope_cos_sin
from dvlm.plugins.backbones.params import LladaParams


class LladaBlock(nn.Module):
    """Pre-norm attention + SwiGLU MLP, both residual."""

    def __init__(self, p: LladaParams) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads = p.n_heads, p.n_kv_heads
        self.head_dim = p.d_model // p.n_heads
        self.rope_full_precision = p.rope_full_precision
        self.attn_norm = RMSNorm(p.d_model, p.rms_norm_eps)
        self.q_proj = nn.Linear(p.d_model, p.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(p.d_model, p.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(p.d_model, p.n_kv_heads * self.head_dim, bias=False)
        self.attn_out = nn.Linear(p.n_heads * self.head_dim, p.d_model, bias=False)
        self.ff_norm = RMSNorm(p.d_model, p.rms_norm_eps)
        self.ff_proj = nn.Linear(p.d_model, p.mlp_hidden_size, bias=False)  # gate (SiLU branch)
        self.up_proj = nn.Linear(p.d_model, p.mlp_hidden_size, bias=False)
        self.ff_out = nn.Linear(p.mlp_hidden_size, p.d_model, bias=False)  # down

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, window: Window, layer: int) -> torch.Tensor:
        B, T, D = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, T, Dh]
        k = self.k_proj(h).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, T, Dh]
        v = self.v_proj(h).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, T, Dh]
        q = apply_rope(q, cos, sin, self.rope_full_precision)
        k = apply_rope(k, cos, sin, self.rope_full_precision)
        if window.cache is not None:
            k, v = window.cache.update(layer, k, v, window.start, window.attend_end)  # [B, Hkv, S, Dh]
        att = attend(q, k, v, window.mask)  # [B, H, T, Dh]
        x = x + self.attn_out(att.transpose(1, 2).reshape(B, T, D))  # [B, T, D]
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class Llada(nn.Module):
    """LLaDA backbone: ids or embeddings ``[B, T(, D)]`` -> hidden states, and logits of the rows asked for."""

    logits_shifted = False

    def __init__(self, params: LladaParams) -> None:
        super().__init__()
        self.params = params
        self.wte = nn.Embedding(params.vocab_size, params.d_model)
        self.blocks = nn.ModuleList(LladaBlock(params) for _ in range(params.n_layers))
        self.ln_f = RMSNorm(params.d_model, params.rms_norm_eps)
        self.lm_head = nn.Linear(params.d_model, params.vocab_size, bias=False)  # OLMo: transformer.ff_out
        self.special_tokens = SpecialTokens(
            mask_id=params.mask_token_id, eos_id=params.eos_token_id, pad_id=params.pad_token_id,
            eot_id=params.eot_token_id, bos_id=params.bos_token_id, extra=dict(params.extra_token_ids),
        )

    @property
    def vocab_size(self) -> int:
        return self.params.vocab_size

    @property
    def hidden_size(self) -> int:
        return self.params.d_model

    @property
    def num_layers(self) -> int:
        return self.params.n_layers

    @property
    def dtype(self) -> torch.dtype:
        return self.wte.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``[B, T] -> [B, T, D]``."""
        return self.wte(input_ids)

    def new_cache(self, batch_size: int, max_length: int) -> KVCache:
        """Empty K/V buffers for ``batch_size`` rows and ``max_length`` positions."""
        p = self.params
        return KVCache(
            p.n_layers, batch_size, max_length, p.n_kv_heads, p.d_model // p.n_heads, dtype=self.dtype, device=self.device
        )

    def hidden_states(
        self,
        input_ids: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        cache_start: int = 0,
        attend_end: int | None = None,
        rows: slice | None = None,
    ) -> torch.Tensor:
        """Final hidden states ``[B, T', D]`` of the window ``rows`` (None: all ``T``); row i predicts token i."""
        x = embed_inputs(self.wte, input_ids, inputs_embeds)  # [B, T, D]
        window = Window.resolve(x, attention_mask, position_ids, cache, cache_start, attend_end)
        cos, sin = rope_cos_sin(window.position_ids, self.params.d_model // self.params.n_heads, self.params.rope_theta)
        for layer, block in enumerate(self.blocks):
            x = block(x, cos, sin, window, layer)
        return self.ln_f(x if rows is None else x[:, rows])  # [B, T', D]: the norm only on the rows asked for

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head on gathered hidden states: ``[..., D] -> [..., V]``."""
        return self.lm_head(hidden)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        cache_start: int = 0,
        attend_end: int | None = None,
        rows: slice | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, T', V]`` of the window ``rows`` (None: all); see ``dvlm.core.interfaces.Backbone``."""
        return self.head(self.hidden_states(
            input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
            cache=cache, cache_start=cache_start, attend_end=attend_end, rows=rows))  # [B, T', V]


def build_llada(params: LladaParams) -> Llada:
    """Registry factory: a randomly initialised LLaDA in ``params.dtype`` (load weights separately)."""
    with default_dtype(torch_dtype(params.dtype)):
        return Llada(params)
