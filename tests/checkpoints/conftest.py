"""Tiny folders built from the real published files (``tests/fixtures/real/``, copied from the authors' hub
folders): the real config.json with only the size fields shrunk, the real generation_config.json, special-token
map, tokenizer config (with each model's own chat template) and tokenizer files, and random bf16 weights under
the real key names in the real shard files of the real index. LLaDA's tokenizer.json is the stand-in described in
``tests/fixtures/real/README.md`` (every real special token at its real id).

Multimodal folders (LaViDa-LLaDA, LLaDA-V, LaViDa-Dream) are the real text folder plus the ``mm_*`` / ``image_*``
fields each repository's ``train.py`` writes, a tiny SigLIP tower, the projector and the image newline under their
LLaVA names (lavida.md 1.8 and 7)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.single_thread import one_thread  # noqa: F401  (autouse)

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
TEXT = {"llada": "llada-8b-instruct", "llada-llama": "llada-8b-instruct-hf-llada-v", "dream": "dream-v0-instruct-7b"}
SHRINK = {  # only size fields
    "llada": {"d_model": 16, "n_heads": 2, "n_kv_heads": 2, "mlp_hidden_size": 32},
    "llada-llama": {"hidden_size": 16, "num_attention_heads": 2, "num_key_value_heads": 2, "intermediate_size": 32},
    "dream": {"hidden_size": 16, "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 32},
}
SIGLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, image_size=28,
              patch_size=14)
MULTIMODAL = {"lavida-llada": ("llada", "llava_llada"), "llada-v": ("llada-llama", "llava_llada"),
              "lavida-dream": ("dream", "llava_dream")}


def _sizes(config: dict) -> dict[str, int]:
    width = config.get("d_model") or config["hidden_size"]
    heads = config.get("n_heads") or config["num_attention_heads"]
    kv = config.get("n_kv_heads") or config.get("num_key_value_heads") or heads
    return dict(D=width, KV=width * kv // heads, H=config.get("mlp_hidden_size") or config["intermediate_size"],
                V=config.get("embedding_size") or config["vocab_size"])


def shape_of(name: str, s: dict[str, int]) -> tuple[int, ...]:
    """A published tensor's shape from its name (written out here, independently of dvlm's renaming)."""
    D, KV, H, V = s["D"], s["KV"], s["H"], s["V"]
    if name in ("model.embed_tokens.weight", "lm_head.weight", "model.transformer.wte.weight",
                "model.transformer.ff_out.weight"):
        return (V, D)
    leaf = re.sub(r".*\.(\w+)\.(weight|bias)$", r"\1.\2", name)
    table = {"q_proj.weight": (D, D), "k_proj.weight": (KV, D), "v_proj.weight": (KV, D), "q_proj.bias": (D,),
             "k_proj.bias": (KV,), "v_proj.bias": (KV,), "attn_out.weight": (D, D), "o_proj.weight": (D, D),
             "ff_proj.weight": (H, D), "gate_proj.weight": (H, D), "up_proj.weight": (H, D),
             "ff_out.weight": (D, H), "down_proj.weight": (D, H)}
    return table.get(leaf, (D,))  # norms


def write_weights(folder: Path, weight_map: dict[str, str], shapes: dict[str, tuple[int, ...]], seed: int) -> None:
    """Random bf16 tensors under ``weight_map``'s names, in its shard files, and the index."""
    generator = torch.Generator().manual_seed(seed)
    shards: dict[str, dict[str, torch.Tensor]] = {}
    for name, file in weight_map.items():
        shards.setdefault(file, {})[name] = (torch.randn(shapes[name], generator=generator) * 0.5).to(torch.bfloat16)
    for file, tensors in shards.items():
        save_file(tensors, folder / file, metadata={"format": "pt"})
    total = sum(t.numel() * 2 for tensors in shards.values() for t in tensors.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))


def build_text_folder(folder: Path, layout: str, seed: int = 0) -> Path:
    """A real text-only folder (``layout``: llada | llada-llama | dream), shrunk."""
    source = REAL / TEXT[layout]
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model.safetensors.index.json"))
    if layout != "dream":
        shutil.copyfile(REAL / "llada-standin-tokenizer.json", folder / "tokenizer.json")
    config = {**json.loads((source / "config.json").read_text()), **SHRINK[layout]}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    weight_map = json.loads((source / "model.safetensors.index.json").read_text())["weight_map"]
    sizes = _sizes(config)
    write_weights(folder, weight_map, {name: shape_of(name, sizes) for name in weight_map}, seed)
    return folder


def build_multimodal_folder(folder: Path, layout: str, pinpoints_as_pairs: bool = False, seed: int = 0) -> Path:
    """A LaViDa-LLaDA / LLaDA-V / LaViDa-Dream folder: the real text folder + LLaVA fields, tower, projector."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    text, model_type = MULTIMODAL[layout]
    build_text_folder(folder, text, seed)
    tower = folder.parent / f"{folder.name}-siglip"
    torch.manual_seed(seed)
    SiglipVisionModel(SiglipVisionConfig(**SIGLIP)).save_pretrained(tower)
    config = json.loads((folder / "config.json").read_text())
    width = _sizes(config)["D"]
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    siglip = SiglipVisionModel.from_pretrained(tower).state_dict()
    extra = {"model.vision_tower.vision_tower.vision_model." + name.removeprefix("vision_model."): tensor
             for name, tensor in siglip.items() if not name.removeprefix("vision_model.").startswith("head.")}
    extra.update({"model.mm_projector.0.weight": torch.randn(width, 32), "model.mm_projector.0.bias": torch.randn(width),
                  "model.mm_projector.2.weight": torch.randn(width, width), "model.mm_projector.2.bias": torch.randn(width),
                  "model.image_newline": torch.randn(width)})
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in extra.items()}, folder / "model-mm.safetensors")
    index["weight_map"].update(dict.fromkeys(extra, "model-mm.safetensors"))
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    if layout == "llada-v":  # LLaDA-V: anyres_max_4 over (1x1)..(6x6); train.py saves the expanded pairs
        grids = "(1x1),...,(6x6)"
        pinpoints = [[w * 28, h * 28] for w in range(1, 7) for h in range(1, 7)] if pinpoints_as_pairs else grids
        image = {"image_aspect_ratio": "anyres_max_4", "image_grid_pinpoints": pinpoints}
    else:  # LaViDa: anyres over its five pinpoints, bilinear pooling
        image = {"image_aspect_ratio": "anyres", "mm_spatial_pool_mode": "bilinear",
                 "image_grid_pinpoints": [[28, 56], [56, 28], [56, 56], [84, 28], [28, 84]]}
    config.update({"model_type": model_type, "mm_vision_tower": str(tower), "use_mm_proj": True,
                   "mm_projector_type": "mlp2x_gelu", "mm_hidden_size": 32, "mm_vision_select_layer": -2,
                   "mm_vision_select_feature": "patch", "mm_patch_merge_type": "spatial_unpad",
                   "mm_use_im_start_end": False, "mm_use_im_patch_token": False,
                   "tokenizer_model_max_length": 4096, **image})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


@pytest.fixture(scope="session")
def real_folder(tmp_path_factory):
    """``real_folder(layout)`` -> a built folder, cached per layout for the session (read-only use)."""
    built: dict[str, Path] = {}

    def get(layout: str) -> Path:
        if layout not in built:
            root = tmp_path_factory.mktemp(layout)
            builder = build_text_folder if layout in TEXT else build_multimodal_folder
            built[layout] = builder(root / layout, layout)
        return built[layout]

    return get


def reference_tokenizer(folder: Path):
    """The tokenizer transformers itself builds from the same files (the references' own loading)."""
    from transformers import PreTrainedTokenizerFast, Qwen2Tokenizer

    if (folder / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(folder))
    return Qwen2Tokenizer.from_pretrained(str(folder))  # Dream's remote-code class is a copy of Qwen2's


def chat_ids(tokenizer, messages) -> list[int]:
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def llava_tokenizer_image_token(prompt: str, tokenizer) -> list[int]:
    """LLaVA's ``mm_utils.tokenizer_image_token`` (as LaViDa and LLaDA-V run it at inference), image id -200."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]
    ids, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        ids.append(chunks[0][0])
    separated = [x for pair in zip(chunks, [[-200] * (offset + 1)] * len(chunks)) for x in pair][:-1]
    for x in separated:
        ids.extend(x[offset:])
    return ids


def run_cli(*args):
    """``dvlm ARGS`` in this process (typer's CliRunner): ``.exit_code``, ``.stdout``; errors as ``.exception``."""
    from typer.testing import CliRunner

    from dvlm.cli import app

    return CliRunner().invoke(app, [str(arg) for arg in args])
