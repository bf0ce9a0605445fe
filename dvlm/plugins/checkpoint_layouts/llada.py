"""LLaDA's two published layouts: LLaDA-8B's OLMo names (``model.transformer.blocks.N.q_proj``) and LLaDA-V's
Llama names (``model.layers.N.self_attn.q_proj``, from its ``rename_checkpoint.py``), both onto the ``llada``
backbone. Absent config options take OLMo's / Llama's defaults; unsupported ones are named."""

from __future__ import annotations

import re
from typing import Any

from dvlm.core.checkpoint_config import ConfigFile
from dvlm.plugins.backbones.params import LladaParams
from dvlm.plugins.checkpoint_layouts.text import TextFormat, model_type_of

SPELLINGS = {"mask_token_id": "<|mdm_mask|>", "eos_token_id": "<|endoftext|>", "pad_token_id": "<|endoftext|>",
             "eot_token_id": "<|eot_id|>", "bos_token_id": "<|startoftext|>"}
AUTO_MAP = {"AutoConfig": "configuration_llada.LLaDAConfig", "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
            "AutoModel": "modeling_llada.LLaDAModelLM"}


# -- OLMo names (LLaDA-8B-Base / -Instruct, LaViDa-LLaDA) -------------------------------------------------


def olmo_params(config: ConfigFile, ids: dict[str, int | None]) -> LladaParams:
    config.expect(
        block_type="llama", activation_type="silu", layer_norm_type="rms", weight_tying=False, rope=True,
        alibi=False, include_bias=False, include_qkv_bias=False, scale_logits=False, input_emb_norm=False,
        attention_layer_norm=False,
    )
    d_model, n_heads = config.require("d_model"), config.require("n_heads")
    return LladaParams(
        d_model=d_model, n_heads=n_heads, n_kv_heads=config.get("n_kv_heads", n_heads),
        n_layers=config.require("n_layers"),
        mlp_hidden_size=config.get("mlp_hidden_size", config.get("mlp_ratio", 4) * d_model),
        vocab_size=olmo_vocab(config), rope_theta=config.get("rope_theta", 10000.0),
        rope_full_precision=config.get("rope_full_precision", True), rms_norm_eps=config.get("rms_norm_eps", 1e-5),
        max_sequence_length=config.get("max_sequence_length", 1024), dtype=config.dtype(), **ids,
    )


def olmo_vocab(config: ConfigFile) -> int:
    return config.data["embedding_size"] if config.data.get("embedding_size") else config.require("vocab_size")


def olmo_config(p: LladaParams) -> dict[str, Any]:
    """The fields of LLaDA-8B-Instruct's ``config.json`` (which has no ``torch_dtype``; dvlm writes it)."""
    return {
        "activation_type": "silu", "alibi": False, "alibi_bias_max": 8.0, "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0, "attention_layer_norm": False, "attention_layer_norm_with_affine": True,
        "auto_map": AUTO_MAP, "bias_for_layer_norm": False, "block_group_size": 1, "block_type": "llama",
        "d_model": p.d_model, "embedding_dropout": 0.0, "embedding_size": p.vocab_size, "eos_token_id": p.eos_token_id,
        "flash_attention": False, "include_bias": False, "include_qkv_bias": False, "init_device": "meta",
        "input_emb_norm": False, "layer_norm_type": "rms", "layer_norm_with_affine": True,
        "mask_token_id": p.mask_token_id, "max_sequence_length": p.max_sequence_length,
        "mlp_hidden_size": p.mlp_hidden_size, "mlp_ratio": 4, "model_type": "llada", "n_heads": p.n_heads,
        "n_kv_heads": p.n_kv_heads, "n_layers": p.n_layers, "pad_token_id": p.pad_token_id,
        "residual_dropout": 0.0, "rms_norm_eps": p.rms_norm_eps, "rope": True,
        "rope_full_precision": p.rope_full_precision, "rope_theta": p.rope_theta, "scale_logits": False,
        "torch_dtype": p.dtype, "use_cache": False, "vocab_size": p.vocab_size, "weight_tying": False,
    }


def olmo_key_in(key: str) -> str:
    """``model.transformer.blocks.0.q_proj.weight`` -> ``blocks.0.q_proj.weight``; the head is ``lm_head``."""
    if key == "model.transformer.ff_out.weight":
        return "lm_head.weight"
    return key.removeprefix("model.transformer.")


def olmo_key_out(name: str) -> str:
    return "model.transformer.ff_out.weight" if name == "lm_head.weight" else "model.transformer." + name


OLMO = TextFormat(
    backbone_kind="llada",
    matches=lambda c: model_type_of(c) == "llada" and "d_model" in c, vocab_size=olmo_vocab, params=olmo_params,
    config=olmo_config, key_in=olmo_key_in, key_out=olmo_key_out, spellings=SPELLINGS, family_template="llada",
)


# -- Llama names (LLaDA-V's LLaDA-8B-Instruct-HF and LLaDA-V) ---------------------------------------------


def llama_params(config: ConfigFile, ids: dict[str, int | None]) -> LladaParams:
    """RoPE rotates in the activation dtype in LLaDA-V's Llama copy."""
    config.expect(hidden_act="silu", attention_bias=False, tie_word_embeddings=False, rope_scaling=None)
    heads = config.require("num_attention_heads")
    return LladaParams(
        d_model=config.require("hidden_size"), n_heads=heads, n_kv_heads=config.get("num_key_value_heads", heads),
        n_layers=config.require("num_hidden_layers"), mlp_hidden_size=config.require("intermediate_size"),
        vocab_size=config.require("vocab_size"), rope_theta=config.get("rope_theta", 10000.0),
        rope_full_precision=False, rms_norm_eps=config.get("rms_norm_eps", 1e-6),
        max_sequence_length=config.get("max_position_embeddings", 2048), dtype=config.dtype(), **ids,
    )


def llama_config(p: LladaParams) -> dict[str, Any]:
    """The fields of LLaDA-V's ``llada_v_prepare/files/config.json``."""
    return {
        "architectures": ["LLaDAModelLM"], "auto_map": AUTO_MAP, "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": p.bos_token_id, "eos_token_id": p.eos_token_id, "hidden_act": "silu",
        "hidden_size": p.d_model, "initializer_range": 0.02, "intermediate_size": p.mlp_hidden_size,
        "mask_token_id": p.mask_token_id, "max_position_embeddings": p.max_sequence_length, "model_type": "llada",
        "num_attention_heads": p.n_heads, "num_hidden_layers": p.n_layers, "num_key_value_heads": p.n_kv_heads,
        "pad_token_id": p.pad_token_id, "pretraining_tp": 1, "rms_norm_eps": p.rms_norm_eps, "rope_scaling": None,
        "rope_theta": p.rope_theta, "tie_word_embeddings": False, "torch_dtype": p.dtype, "use_cache": False,
        "vocab_size": p.vocab_size,
    }


LLAMA_TO_LLADA = {
    "self_attn.q_proj": "q_proj", "self_attn.k_proj": "k_proj", "self_attn.v_proj": "v_proj",
    "self_attn.o_proj": "attn_out", "mlp.gate_proj": "ff_proj", "mlp.up_proj": "up_proj",
    "mlp.down_proj": "ff_out", "input_layernorm": "attn_norm", "post_attention_layernorm": "ff_norm",
}
LLADA_TO_LLAMA = {v: k for k, v in LLAMA_TO_LLADA.items()}
LLAMA_TOP = {"model.embed_tokens.weight": "wte.weight", "model.norm.weight": "ln_f.weight"}
_LLAMA_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)\.weight")
_LLADA_BLOCK = re.compile(r"blocks\.(\d+)\.(\w+)\.weight")


def llama_key_in(key: str) -> str:
    """The inverse of LLaDA-V's ``rename_checkpoint.py``: Llama names -> dvlm LLaDA names."""
    if key in LLAMA_TOP:
        return LLAMA_TOP[key]
    match = _LLAMA_LAYER.fullmatch(key)
    if match and match.group(2) in LLAMA_TO_LLADA:
        return f"blocks.{match.group(1)}.{LLAMA_TO_LLADA[match.group(2)]}.weight"
    return key


def llama_key_out(name: str) -> str:
    """LLaDA-V's ``rename_checkpoint.py``: dvlm LLaDA names -> Llama names."""
    top = {v: k for k, v in LLAMA_TOP.items()}
    if name in top:
        return top[name]
    match = _LLADA_BLOCK.fullmatch(name)
    if match and match.group(2) in LLADA_TO_LLAMA:
        return f"model.layers.{match.group(1)}.{LLADA_TO_LLAMA[match.group(2)]}.weight"
    return name


LLAMA = TextFormat(
    backbone_kind="llada",
    matches=lambda c: model_type_of(c) == "llada" and "hidden_size" in c, vocab_size=lambda c: c.require("vocab_size"),
    params=llama_params, config=llama_config, key_in=llama_key_in, key_out=llama_key_out, spellings=SPELLINGS,
    family_template="llada",
)
