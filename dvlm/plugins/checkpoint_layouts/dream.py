"""Dream-7B's published layout (Qwen2 names: ``model.layers.N.self_attn.q_proj`` with q/k/v biases,
``lm_head``) onto the ``dream`` backbone. Absent options take ``DreamConfig``'s defaults."""

from __future__ import annotations

from typing import Any

from dvlm.core.checkpoint_config import ConfigFile
from dvlm.plugins.backbones.params import DreamParams
from dvlm.plugins.checkpoint_layouts.text import TextFormat, model_type_of

SPELLINGS = {"mask_token_id": "<|mask|>", "eos_token_id": "<|endoftext|>", "pad_token_id": "<|endoftext|>",
             "eot_token_id": "<|im_end|>", "bos_token_id": "<|beginoftext|>"}


def dream_params(config: ConfigFile, ids: dict[str, int | None]) -> DreamParams:
    config.expect(hidden_act="silu", tie_word_embeddings=False, use_sliding_window=False, rope_scaling=None)
    heads = config.require("num_attention_heads")
    return DreamParams(
        hidden_size=config.require("hidden_size"), intermediate_size=config.require("intermediate_size"),
        num_hidden_layers=config.require("num_hidden_layers"), num_attention_heads=heads,
        num_key_value_heads=config.get("num_key_value_heads", heads), vocab_size=config.require("vocab_size"),
        rope_theta=config.get("rope_theta", 10000.0), rms_norm_eps=config.get("rms_norm_eps", 1e-6),
        max_position_embeddings=config.get("max_position_embeddings", 32768), dtype=config.dtype(), **ids,
    )


def dream_config(p: DreamParams) -> dict[str, Any]:
    """The fields of Dream-v0-Instruct-7B's ``config.json``."""
    return {
        "architectures": ["DreamModel"], "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "bos_token_id": p.bos_token_id, "eos_token_id": p.eos_token_id, "hidden_act": "silu",
        "hidden_size": p.hidden_size, "initializer_range": 0.02, "intermediate_size": p.intermediate_size,
        "mask_token_id": p.mask_token_id, "max_position_embeddings": p.max_position_embeddings,
        "max_window_layers": p.num_hidden_layers, "model_type": "Dream", "num_attention_heads": p.num_attention_heads,
        "num_hidden_layers": p.num_hidden_layers, "num_key_value_heads": p.num_key_value_heads,
        "pad_token_id": p.pad_token_id, "rms_norm_eps": p.rms_norm_eps, "rope_scaling": None,
        "rope_theta": p.rope_theta, "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": p.dtype,
        "use_cache": True, "use_mrope": False, "use_sliding_window": False, "vocab_size": p.vocab_size,
    }


DREAM = TextFormat(
    backbone_kind="dream",
    matches=lambda c: model_type_of(c) == "dream", vocab_size=lambda c: c.require("vocab_size"), params=dream_params,
    config=dream_config, key_in=lambda key: key.removeprefix("model."),
    key_out=lambda name: name if name == "lm_head.weight" else "model." + name, spellings=SPELLINGS,
    family_template="dream",
)
