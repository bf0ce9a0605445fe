"""``toy_mdm``: a deliberately small bidirectional mask predictor, to show a model family added from outside dvlm.

It honours dvlm's ``Backbone`` contract (``dvlm.core.interfaces``): ids or embeddings in, position-aligned hidden
states ``[B, T, D]`` out (``hidden_states``), the LM head ``head`` on any gathered rows, and ``forward`` giving the
logits of the window rows asked for (``rows``), bidirectional attention unless a key-padding mask says otherwise, special tokens declared.
It has no KV cache (samplers run it with ``cache: none``).

Shapes: B batch, T tokens, D width, H heads, Dh = D / H.
"""

import torch
import torch.nn.functional as F
from torch import nn

from dvlm.core.errors import DvlmError
from dvlm.core.forward_window import Window, embed_inputs
from dvlm.core.interfaces import SpecialTokens

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp_in = nn.Linear(width, 4 * width)
        self.mlp_out = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).split(width, dim=-1)  # 3 x [B, T, D]
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))  # [B, H, T, Dh]
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, H, T, Dh]
        x = x + self.out(attended.transpose(1, 2).reshape(batch, length, width))  # [B, T, D]
        return x + self.mlp_out(F.gelu(self.mlp_in(self.mlp_norm(x))))


class ToyBackbone(nn.Module):
    logits_shifted = False

    def __init__(self, params) -> None:
        super().__init__()
        self.params = params
        self.vocab_size, self.hidden_size = params.vocab_size, params.width
        self.special_tokens = SpecialTokens(mask_id=params.mask_token_id, eos_id=params.eos_token_id,
                                            pad_id=params.eos_token_id, bos_id=params.bos_token_id)
        dtype = DTYPES[params.dtype]
        self.embed_tokens = nn.Embedding(params.vocab_size, params.width, dtype=dtype)
        self.position = nn.Embedding(params.max_length, params.width, dtype=dtype)
        self.blocks = nn.ModuleList(Block(params.width, params.heads).to(dtype) for _ in range(params.layers))
        self.norm = nn.LayerNorm(params.width, dtype=dtype)
        self.head = nn.Linear(params.width, params.vocab_size, bias=False, dtype=dtype)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(input_ids)

    def new_cache(self, batch_size: int, max_length: int):
        raise DvlmError("the toy_mdm backbone has no KV cache; use a sampler with cache: none")

    def hidden_states(self, input_ids=None, *, inputs_embeds=None, attention_mask=None, position_ids=None,
                      cache=None, cache_start=0, attend_end=None, rows: slice | None = None) -> torch.Tensor:
        if cache is not None:
            self.new_cache(0, 0)
        x = embed_inputs(self.embed_tokens, input_ids, inputs_embeds)  # [B, T, D]
        window = Window.resolve(x, attention_mask, position_ids, None, cache_start, attend_end)
        x = x + self.position(window.position_ids.clamp(max=self.params.max_length - 1))
        for block in self.blocks:
            x = block(x, window.mask)
        return self.norm(x if rows is None else x[:, rows])  # [B, T', D]

    def forward(self, input_ids=None, *, rows: slice | None = None, **window) -> torch.Tensor:
        return self.head(self.hidden_states(input_ids, rows=rows, **window))  # [B, T', V]
