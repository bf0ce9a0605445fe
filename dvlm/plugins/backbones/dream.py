"""Dream: Qwen2 weights continued-pretrained as a bidirectional masked-diffusion LM.

Follows HF ``DreamModel`` (Dream-org/Dream-v0-*-7B): pre-norm RMSNorm, q/k/v projections *with*
bias and ``o_proj`` without, GQA, HF rotate-half RoPE with cos/sin in the activation dtype,
attention with no causal mask, SwiGLU ``down_proj(silu(gate_proj(h)) * up_proj(h))``, final
``norm`` and an untied ``lm_head``. Module names are the published ones minus the ``model.``
prefix.

Dream keeps Qwen's next-token head: the output at position ``i - 1`` predicts token ``i``
(``logits_shifted``). ``hidden_states`` returns hidden states already aligned to positions, and ``forward``
their logits: row ``i`` is the hidden state at ``i - 1`` (row 0 reuses its own, as the reference does). A
cached window starting at ``s > 0`` takes its first row from the hidden state at ``s - 1`` kept
by the cache from the forward that wrote it.

Shape legend:
    B batch   T window tokens   S attended keys   D hidden_size   F intermediate_size   V vocab
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
from dvlm.plugins.backbones.params import DreamParams


class DreamAttention(nn.Module):
    """GQA self-attention with q/k/v biases."""

    def __init__(self, p: DreamParams) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads = p.num_attention_heads, p.num_key_value_heads
        self.head_dim = p.hidden_size // p.num_attention_heads
        self.q_proj = nn.Linear(p.hidden_size, self.n_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(p.hidden_size, self.n_kv_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(p.hidden_size, self.n_kv_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, p.hidden_size, bias=False)

    def forward(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, window: Window, layer: int) -> torch.Tensor:
        B, T, D = h.shape
        q = self.q_proj(h).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, T, Dh]
        k = self.k_proj(h).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, T, Dh]
        v = self.v_proj(h).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, T, Dh]
        q = apply_rope(q, cos, sin, full_precision=False)
        k = apply_rope(k, cos, sin, full_precision=False)
        if window.cache is not None:
            k, v = window.cache.update(layer, k, v, window.start, window.attend_end)  # [B, Hkv, S, Dh]
        att = attend(q, k, v, window.mask)  # [B, H, T, Dh]
        return self.o_proj(att.transpose(1, 2).reshape(B, T, D))  # [B, T, D]


class DreamMLP(nn.Module):
    """SwiGLU: ``down_proj(silu(gate_proj(h)) * up_proj(h))``."""

    def __init__(self, p: DreamParams) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(p.hidden_size, p.intermediate_size, bias=False)
        self.up_proj = nn.Linear(p.hidden_size, p.intermediate_size, bias=False)
        self.down_proj = nn.Linear(p.intermediate_size, p.hidden_size, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class DreamLayer(nn.Module):
    """Pre-norm attention + MLP, both residual."""

    def __init__(self, p: DreamParams) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(p.hidden_size, p.rms_norm_eps)
        self.self_attn = DreamAttention(p)
        self.post_attention_layernorm = RMSNorm(p.hidden_size, p.rms_norm_eps)
        self.mlp = DreamMLP(p)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, window: Window, layer: int) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, window, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Dream(nn.Module):
    """Dream backbone: ids or embeddings ``[B, T(, D)]`` -> aligned hidden states, and logits of the rows asked for."""

    logits_shifted = True

    def __init__(self, params: DreamParams) -> None:
        super().__init__()
        self.params = params
        self.embed_tokens = nn.Embedding(params.vocab_size, params.hidden_size)
        self.layers = nn.ModuleList(DreamLayer(params) for _ in range(params.num_hidden_layers))
        self.norm = RMSNorm(params.hidden_size, params.rms_norm_eps)
        self.lm_head = nn.Linear(params.hidden_size, params.vocab_size, bias=False)
        self.special_tokens = SpecialTokens(
            mask_id=params.mask_token_id, eos_id=params.eos_token_id, pad_id=params.pad_token_id,
            eot_id=params.eot_token_id, bos_id=params.bos_token_id, extra=dict(params.extra_token_ids),
        )

    @property
    def vocab_size(self) -> int:
        return self.params.vocab_size

    @property
    def hidden_size(self) -> int:
        return self.params.hidden_size

    @property
    def num_layers(self) -> int:
        return self.params.num_hidden_layers

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``[B, T] -> [B, T, D]``."""
        return self.embed_tokens(input_ids)

    def new_cache(self, batch_size: int, max_length: int) -> KVCache:
        """Empty K/V buffers, plus the hidden states the shifted head needs at window starts."""
        p = self.params
        return KVCache(
            p.num_hidden_layers, batch_size, max_length, p.num_key_value_heads, p.hidden_size // p.num_attention_heads,
            dtype=self.dtype, device=self.device, hidden_size=p.hidden_size,
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
        """Aligned final hidden states ``[B, T', D]`` of the window ``rows`` (None: all ``T``): row i is the
        hidden state at i - 1, whose head output predicts token i."""
        x = embed_inputs(self.embed_tokens, input_ids, inputs_embeds)  # [B, T, D]
        window = Window.resolve(x, attention_mask, position_ids, cache, cache_start, attend_end)
        p = self.params
        cos, sin = rope_cos_sin(window.position_ids, p.hidden_size // p.num_attention_heads, p.rope_theta)
        for layer, block in enumerate(self.layers):
            x = block(x, cos, sin, window, layer)
        h = self.norm(x)  # [B, T, D]
        if cache is not None:
            cache.write_hidden(h, cache_start)
        first, last, _ = (slice(None) if rows is None else rows).indices(h.shape[1])
        if last <= first:
            return h[:, :0]  # [B, 0, D]: a prefill that only fills the cache
        if first > 0:
            return h[:, first - 1 : last - 1]  # [B, T', D]
        before = cache.hidden_before(cache_start) if cache is not None and cache_start > 0 else h[:, :1]  # [B, 1, D]
        return torch.cat([before, h[:, : last - 1]], dim=1)  # [B, T', D], row i predicts token i

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head on gathered (aligned) hidden states: ``[..., D] -> [..., V]``."""
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
        """Aligned logits ``[B, T', V]`` of the window ``rows`` (None: all); see ``dvlm.core.interfaces.Backbone``."""
        return self.head(self.hidden_states(
            input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
            cache=cache, cache_start=cache_start, attend_end=attend_end, rows=rows))  # [B, T', V]


def build_dream(params: DreamParams) -> Dream:
    """Registry factory: a randomly initialised Dream in ``params.dtype`` (load weights separately)."""
    with default_dtype(torch_dtype(params.dtype)):
        return Dream(params)
