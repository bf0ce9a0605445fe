"""Checkpoint layouts: how a published folder's ``config.json`` and tensor names map onto dvlm.

Each :class:`Layout` says how to recognise a folder, how to turn its config into a dvlm spec (the
params of a registered kind), and how to rename its tensors to the dvlm model's names. To support
a new layout, write those three functions and add a row to :data:`LAYOUTS` (first match wins).

Special-token ids are read from ``config.json``, then ``generation_config.json``, then by name
from ``tokenizer_config.json`` (its ``added_tokens_decoder``); nothing here hard-codes an id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dvlm.core.errors import CheckpointError
from dvlm.core.specs import ComponentParams, parse_spec

CONFIG = "config.json"
SPEC = "spec.json"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a syntax error names the file, line and column."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} line {err.lineno}, column {err.colno}: invalid JSON: {err.msg}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class ConfigFile:
    """A folder's config (``config.json`` or ``spec.json``), read with errors that name file and field."""

    folder: Path
    name: str
    data: dict[str, Any]

    @property
    def path(self) -> Path:
        return self.folder / self.name

    def require(self, field: str) -> Any:
        if self.data.get(field) is None:
            raise CheckpointError(f"{self.path}: missing field '{field}', which is needed to build the model")
        return self.data[field]

    def get(self, field: str, default: Any) -> Any:
        value = self.data.get(field)
        return default if value is None else value

    def expect(self, **supported: Any) -> None:
        """Fields that, when present, must have the one value dvlm implements."""
        for field, value in supported.items():
            if field in self.data and self.data[field] is not None and self.data[field] != value:
                raise CheckpointError(
                    f"{self.path}: {field}={self.data[field]!r} is not supported; dvlm implements {field}={value!r}"
                )

    def dtype(self) -> str:
        """The stored dtype (``torch_dtype``), float32 when absent or unusual."""
        value = self.data.get("torch_dtype")
        return value if value in ("float32", "bfloat16", "float16") else "float32"

    def token_id(self, field: str, token: str) -> int | None:
        """Id of a special token: config field, else generation config, else the tokenizer's name table."""
        if self.data.get(field) is not None:
            return int(self.data[field])
        generation = self.folder / "generation_config.json"
        if generation.is_file():
            value = read_json(generation).get(field)
            if value is not None:
                return int(value)
        tokenizer = self.folder / "tokenizer_config.json"
        if tokenizer.is_file():
            for token_id, entry in read_json(tokenizer).get("added_tokens_decoder", {}).items():
                if entry.get("content") == token:
                    return int(token_id)
        return None

    def required_token_id(self, field: str, token: str) -> int:
        value = self.token_id(field, token)
        if value is None:
            raise CheckpointError(
                f"{self.path}: missing field '{field}' and no tokenizer_config.json in {self.folder} names "
                f"'{token}'; add \"{field}\" to {self.name}"
            )
        return value


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


# -- LLaDA ---------------------------------------------------------------------------------------


def _llada_tokens(config: ConfigFile) -> dict[str, Any]:
    eos = config.required_token_id("eos_token_id", "<|endoftext|>")
    return dict(
        mask_token_id=config.required_token_id("mask_token_id", "<|mdm_mask|>"),
        eos_token_id=eos,
        pad_token_id=_default(config.token_id("pad_token_id", "<|endoftext|>"), eos),
        eot_token_id=config.token_id("eot_token_id", "<|eot_id|>"),
        bos_token_id=config.token_id("bos_token_id", "<|startoftext|>"),
    )


def llada_olmo_params(config: ConfigFile) -> ComponentParams:
    """LLaDA-8B's OLMo config (``d_model``, ``n_layers``, ...); absent options take OLMo's defaults."""
    from dvlm.plugins.backbones.params import LladaParams

    config.expect(
        block_type="llama", activation_type="silu", layer_norm_type="rms", weight_tying=False, rope=True,
        alibi=False, include_bias=False, include_qkv_bias=False, scale_logits=False, input_emb_norm=False,
        attention_layer_norm=False,
    )
    d_model, n_heads = config.require("d_model"), config.require("n_heads")
    return LladaParams(
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=config.get("n_kv_heads", n_heads),
        n_layers=config.require("n_layers"),
        mlp_hidden_size=config.get("mlp_hidden_size", config.get("mlp_ratio", 4) * d_model),
        vocab_size=config.data["embedding_size"] if config.data.get("embedding_size") else config.require("vocab_size"),
        rope_theta=config.get("rope_theta", 10000.0),
        rope_full_precision=config.get("rope_full_precision", True),
        rms_norm_eps=config.get("rms_norm_eps", 1e-5),
        max_sequence_length=config.get("max_sequence_length", 1024),
        dtype=config.dtype(),
        **_llada_tokens(config),
    )


def llada_olmo_key(key: str) -> str:
    """``model.transformer.blocks.0.q_proj.weight`` -> ``blocks.0.q_proj.weight``; the head is ``lm_head``."""
    if key == "model.transformer.ff_out.weight":
        return "lm_head.weight"
    return key.removeprefix("model.transformer.")


def llada_llama_params(config: ConfigFile) -> ComponentParams:
    """LLaDA-V's Llama-style config (``hidden_size``, ...); RoPE rotates in the activation dtype."""
    from dvlm.plugins.backbones.params import LladaParams

    config.expect(hidden_act="silu", attention_bias=False, tie_word_embeddings=False, rope_scaling=None)
    heads = config.require("num_attention_heads")
    return LladaParams(
        d_model=config.require("hidden_size"),
        n_heads=heads,
        n_kv_heads=config.get("num_key_value_heads", heads),
        n_layers=config.require("num_hidden_layers"),
        mlp_hidden_size=config.require("intermediate_size"),
        vocab_size=config.require("vocab_size"),
        rope_theta=config.get("rope_theta", 10000.0),
        rope_full_precision=False,
        rms_norm_eps=config.get("rms_norm_eps", 1e-6),
        max_sequence_length=config.get("max_position_embeddings", 2048),
        dtype=config.dtype(),
        **_llada_tokens(config),
    )


_LLAMA_TO_LLADA = {
    "self_attn.q_proj": "q_proj", "self_attn.k_proj": "k_proj", "self_attn.v_proj": "v_proj",
    "self_attn.o_proj": "attn_out", "mlp.gate_proj": "ff_proj", "mlp.up_proj": "up_proj",
    "mlp.down_proj": "ff_out", "input_layernorm": "attn_norm", "post_attention_layernorm": "ff_norm",
}
_LLAMA_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)\.weight")


def llada_llama_key(key: str) -> str:
    """The inverse of LLaDA-V's ``rename_checkpoint.py``: Llama names -> dvlm LLaDA names."""
    top = {"model.embed_tokens.weight": "wte.weight", "model.norm.weight": "ln_f.weight"}
    if key in top:
        return top[key]
    match = _LLAMA_LAYER.fullmatch(key)
    if match and match.group(2) in _LLAMA_TO_LLADA:
        return f"blocks.{match.group(1)}.{_LLAMA_TO_LLADA[match.group(2)]}.weight"
    return key


# -- Dream ---------------------------------------------------------------------------------------


def dream_params(config: ConfigFile) -> ComponentParams:
    """Dream's Qwen2-style config; absent options take ``DreamConfig``'s defaults."""
    from dvlm.plugins.backbones.params import DreamParams

    config.expect(hidden_act="silu", tie_word_embeddings=False, use_sliding_window=False, rope_scaling=None)
    heads = config.require("num_attention_heads")
    eos = config.required_token_id("eos_token_id", "<|endoftext|>")
    return DreamParams(
        hidden_size=config.require("hidden_size"),
        intermediate_size=config.require("intermediate_size"),
        num_hidden_layers=config.require("num_hidden_layers"),
        num_attention_heads=heads,
        num_key_value_heads=config.get("num_key_value_heads", heads),
        vocab_size=config.require("vocab_size"),
        rope_theta=config.get("rope_theta", 10000.0),
        rms_norm_eps=config.get("rms_norm_eps", 1e-6),
        max_position_embeddings=config.get("max_position_embeddings", 32768),
        mask_token_id=config.required_token_id("mask_token_id", "<|mask|>"),
        eos_token_id=eos,
        pad_token_id=_default(config.token_id("pad_token_id", "<|endoftext|>"), eos),
        eot_token_id=config.token_id("eot_token_id", "<|im_end|>"),
        bos_token_id=config.token_id("bos_token_id", "<|beginoftext|>"),
        dtype=config.dtype(),
    )


def dream_key(key: str) -> str:
    """``model.layers.0.self_attn.q_proj.bias`` -> ``layers.0.self_attn.q_proj.bias``."""
    return key.removeprefix("model.")


# -- dvlm's own checkpoints ----------------------------------------------------------------------


def dvlm_params(config: ConfigFile) -> ComponentParams:
    """``spec.json`` written by ``dvlm.core.checkpoint.save_pretrained``: a model spec."""
    spec = parse_spec(config.data, source=str(config.path), as_type="model")
    if spec.vision_encoder is not None or spec.projector is not None:
        raise CheckpointError(f"{config.path}: loading multimodal dvlm checkpoints is not supported yet")
    return spec.backbone


# -- the table -----------------------------------------------------------------------------------


def _model_type(config: dict[str, Any]) -> str:
    return str(config.get("model_type", "")).lower()


@dataclass(frozen=True)
class Layout:
    name: str
    summary: str
    config_file: str
    """The file whose presence (and content) identifies the layout."""
    matches: Callable[[dict[str, Any]], bool]
    params: Callable[[ConfigFile], ComponentParams]
    """Config -> the params of a registered backbone kind (``dtype`` from the stored one)."""
    key: Callable[[str], str]
    """Checkpoint tensor name -> the dvlm model's parameter name."""


LAYOUTS: list[Layout] = [
    Layout("dvlm", "a dvlm checkpoint (spec.json + model.safetensors)", SPEC, lambda c: True, dvlm_params, lambda k: k),
    Layout(
        "llada", "LLaDA-8B, OLMo names (config.json: model_type 'llada' with d_model; tensors model.transformer.*)",
        CONFIG, lambda c: _model_type(c) == "llada" and "d_model" in c, llada_olmo_params, llada_olmo_key,
    ),
    Layout(
        "llada-llama", "LLaDA in LLaDA-V's Llama names (config.json: model_type 'llada' with hidden_size; "
        "tensors model.layers.*, lm_head)",
        CONFIG, lambda c: _model_type(c) == "llada" and "hidden_size" in c, llada_llama_params, llada_llama_key,
    ),
    Layout(
        "dream", "Dream-7B (config.json: model_type 'Dream'; tensors model.layers.* with q/k/v biases, lm_head)",
        CONFIG, lambda c: _model_type(c) == "dream", dream_params, dream_key,
    ),
]


def detect_layout(folder: Path) -> tuple[Layout, ConfigFile]:
    """The first layout whose config file exists and matches; otherwise an error listing them all."""
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    for layout in LAYOUTS:
        path = folder / layout.config_file
        if path.is_file():
            data = read_json(path)
            if layout.matches(data):
                return layout, ConfigFile(folder, layout.config_file, data)
    supported = "\n".join(f"  - {layout.name}: {layout.summary}" for layout in LAYOUTS)
    config = folder / CONFIG
    if config.is_file():
        data = read_json(config)
        found = f"{config} has model_type={data.get('model_type')!r}, architectures={data.get('architectures')!r}"
    else:
        found = f"{folder} has neither {CONFIG} nor {SPEC}"
    raise CheckpointError(f"unrecognised checkpoint layout: {found}. Supported layouts:\n{supported}")
