"""Published multimodal layouts: tiny LaViDa-LLaDA, LaViDa-Dream and LLaDA-V folders written with the
published tensor names and config fields (lavida.md 1.8 and 7, backbones.md 1.6 and 5) load, map every tensor
where it belongs, and generate; ``dvlm convert`` writes a dvlm checkpoint that reloads to identical outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import SiglipVisionConfig, SiglipVisionModel

import dvlm
from dvlm.core.convert_cli import convert_command
from dvlm.core.errors import CheckpointError
from dvlm.core.tiny_tokenizer import save_tiny_tokenizer_for
from tests.vision.conftest import backbone_params, sharpen

FAST = ["gen_length=8", "steps=4"]
SIGLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, image_size=28,
              patch_size=14)
LLAMA_NAMES = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
               "attn_out": "self_attn.o_proj", "ff_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
               "ff_out": "mlp.down_proj", "attn_norm": "input_layernorm", "ff_norm": "post_attention_layernorm"}


def _published_backbone_name(layout: str, name: str) -> str:
    """dvlm backbone name -> the published one (written out here, independently of the loader's renaming)."""
    if layout == "lavida-llada":  # OLMo names
        return "model.transformer.ff_out.weight" if name == "lm_head.weight" else "model.transformer." + name
    if layout == "llada-v":  # Llama names (LLaDA-V's rename_checkpoint.py)
        top = {"wte.weight": "model.embed_tokens.weight", "ln_f.weight": "model.norm.weight",
               "lm_head.weight": "lm_head.weight"}
        if name in top:
            return top[name]
        _, layer, module, _ = name.split(".")
        return f"model.layers.{layer}.{LLAMA_NAMES[module]}.weight"
    return name if name == "lm_head.weight" else "model." + name  # Dream (Qwen2 names)


def _backbone_config(layout: str, p) -> dict:
    if layout == "lavida-llada":
        return {"model_type": "llava_llada", "d_model": p.d_model, "n_heads": p.n_heads, "n_kv_heads": p.n_kv_heads,
                "n_layers": p.n_layers, "mlp_hidden_size": p.mlp_hidden_size, "vocab_size": p.vocab_size,
                "embedding_size": p.vocab_size, "rope_theta": p.rope_theta, "max_sequence_length": 1024,
                "rms_norm_eps": p.rms_norm_eps, "block_type": "llama", "activation_type": "silu",
                "layer_norm_type": "rms", "weight_tying": False, "mask_token_id": p.mask_token_id,
                "eos_token_id": p.eos_token_id, "pad_token_id": p.pad_token_id, "torch_dtype": "float32"}
    if layout == "llada-v":
        return {"model_type": "llava_llada", "architectures": ["LlavaLLaDAModelLM"], "hidden_size": p.d_model,
                "intermediate_size": p.mlp_hidden_size, "num_hidden_layers": p.n_layers,
                "num_attention_heads": p.n_heads, "num_key_value_heads": p.n_kv_heads, "vocab_size": p.vocab_size,
                "rope_theta": p.rope_theta, "rms_norm_eps": p.rms_norm_eps, "max_position_embeddings": 1024,
                "hidden_act": "silu", "attention_bias": False, "tie_word_embeddings": False,
                "mask_token_id": p.mask_token_id, "eos_token_id": p.eos_token_id, "pad_token_id": p.pad_token_id,
                "torch_dtype": "float32"}
    return {"model_type": "llava_dream", "hidden_size": p.hidden_size, "intermediate_size": p.intermediate_size,
            "num_hidden_layers": p.num_hidden_layers, "num_attention_heads": p.num_attention_heads,
            "num_key_value_heads": p.num_key_value_heads, "vocab_size": p.vocab_size, "rope_theta": p.rope_theta,
            "rms_norm_eps": p.rms_norm_eps, "max_position_embeddings": 1024, "hidden_act": "silu",
            "tie_word_embeddings": False, "mask_token_id": p.mask_token_id, "eos_token_id": p.eos_token_id,
            "pad_token_id": p.pad_token_id, "torch_dtype": "float32"}


MM_CONFIG = {  # lavida.md 1.8, at the tiny scale (28-px views)
    "lavida-llada": {"image_aspect_ratio": "anyres", "image_grid_pinpoints": [[28, 56], [56, 28], [56, 56], [84, 28],
                                                                              [28, 84]],
                     "mm_spatial_pool_mode": "bilinear", "mm_spatial_pool_stride": None},
    "llada-v": {"image_aspect_ratio": "anyres_max_4", "image_grid_pinpoints": "(1x1),...,(6x6)"},
}
MM_CONFIG["lavida-dream"] = MM_CONFIG["lavida-llada"]


def write_published(folder, layout: str, tower_dir, seed: int = 0):
    """A tiny published-layout folder: backbone + SigLIP tower (last layer deleted, post-LN kept) + projector +
    newline, the LLaVA config fields and a tokenizer. Returns (folder, dvlm-name -> tensor, full SigLIP)."""
    torch.manual_seed(seed)
    params = backbone_params("dream" if layout == "lavida-dream" else "llada")
    backbone = dvlm.registry().build("backbones", params)
    siglip = SiglipVisionModel(SiglipVisionConfig(**SIGLIP)).eval()
    siglip.save_pretrained(tower_dir)
    width = backbone.hidden_size
    published, dvlm_names = {}, {}
    for name, tensor in backbone.state_dict().items():
        tensor = torch.randn(tensor.shape) * 0.3  # sharp weights: answers depend on the inputs
        published[_published_backbone_name(layout, name)] = tensor
        dvlm_names["backbone." + name] = tensor
    for name, tensor in siglip.state_dict().items():
        name = name.removeprefix("vision_model.")
        if name.startswith(("encoder.layers.2.", "head.")):  # LaViDa deletes the last layer and the head
            continue
        published["model.vision_tower.vision_tower.vision_model." + name] = tensor
        if not name.startswith("post_layernorm."):
            dvlm_names["vision." + name] = tensor
    for name, shape in {"0.weight": (width, 32), "0.bias": (width,), "2.weight": (width, width), "2.bias": (width,)}.items():
        published["model.mm_projector." + name] = dvlm_names["projector." + name] = torch.randn(shape) * 0.3
    published["model.image_newline"] = dvlm_names["image_newline"] = torch.randn(width)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in published.items()}, folder / "model.safetensors")
    config = {**_backbone_config(layout, params), **MM_CONFIG[layout],
              "mm_vision_tower": str(tower_dir), "use_mm_proj": True, "mm_projector_type": "mlp2x_gelu",
              "mm_hidden_size": 32, "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch",
              "mm_patch_merge_type": "spatial_unpad", "mm_use_im_start_end": False, "mm_use_im_patch_token": False,
              "tokenizer_model_max_length": 1024, "tokenizer_padding_side": "right"}
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    save_tiny_tokenizer_for(folder, params)
    return folder, dvlm_names, siglip


LAYOUTS = ["lavida-llada", "lavida-dream", "llada-v"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_published_folder_loads_every_tensor_where_it_belongs(tmp_path, image, layout):
    folder, expected, siglip = write_published(tmp_path / layout, layout, tmp_path / "siglip")
    model = dvlm.load_pretrained(folder)
    state = model.state_dict()
    assert set(state) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(state[name], tensor), name
    spec = model.spec
    assert spec.vision_encoder.kind == "siglip" and spec.vision_encoder.select_layer == -2
    assert spec.image_layout.kind == ("anyres_max" if layout == "llada-v" else "anyres")
    assert spec.chat_template.kind == ("dream" if layout == "lavida-dream" else "llada")
    pixels = torch.randn(2, 3, 28, 28)
    with torch.no_grad():  # the tower is SigLIP's penultimate hidden state
        reference = siglip(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
        torch.testing.assert_close(model.vision(pixels), reference)
    out = dvlm.generate(model, prompt="What is it?", images=[image(), image(60, 20)], sampler="lavida", overrides=FAST)
    assert out.token_ids.shape == (1, 8)


@pytest.mark.parametrize("layout", ["lavida-llada", "llada-v"])
def test_convert_writes_a_dvlm_checkpoint_that_reloads_identically(tmp_path, image, layout):
    folder, _, _ = write_published(tmp_path / layout, layout, tmp_path / "siglip")
    convert_command(folder, tmp_path / "converted")
    assert {"spec.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "converted").iterdir()}
    original, converted = dvlm.load_pretrained(folder), dvlm.load_pretrained(tmp_path / "converted")
    assert converted.spec == original.spec
    prompts = ["Describe <image>", "Compare <image> and <image> please"]
    images = [[image()], [image(30, 80), image(70, 20, (0, 0, 200))]]
    a = dvlm.generate(original, prompt=prompts, images=images, sampler="lavida", overrides=FAST)
    b = dvlm.generate(converted, prompt=prompts, images=images, sampler="lavida", overrides=FAST)
    assert torch.equal(a.token_ids, b.token_ids) and a.text == b.text
    batch = original.prompt_batch(prompts, images)
    with torch.no_grad():
        torch.testing.assert_close(original(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask),
                                   converted(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask),
                                   rtol=0, atol=0)


def test_a_built_model_saves_and_reloads(tmp_path, vlm_spec, image):
    model = sharpen(dvlm.build(vlm_spec(encoder="clip")))
    from dvlm.core.checkpoint import save_pretrained

    save_pretrained(model, tmp_path / "ckpt")
    again = dvlm.load_pretrained(tmp_path / "ckpt")
    assert again.spec.vision_encoder.kind == "clip" and again.spec.vision_encoder.init == "random"
    for name, tensor in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name
    a = dvlm.generate(model, prompt="Hi", images=[image()], sampler="lavida", overrides=FAST)
    b = dvlm.generate(again, prompt="Hi", images=[image()], sampler="lavida", overrides=FAST)
    assert torch.equal(a.token_ids, b.token_ids)


def test_unknown_or_missing_tensors_are_named(tmp_path):
    folder, _, _ = write_published(tmp_path / "m", "lavida-llada", tmp_path / "siglip")
    from safetensors.torch import load_file

    tensors = load_file(folder / "model.safetensors")
    tensors["model.something_new.weight"] = torch.zeros(2)
    del tensors["model.mm_projector.2.bias"]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.something_new.weight"):
        dvlm.load_pretrained(folder)
    del tensors["model.something_new.weight"]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="projector.2.bias"):
        dvlm.load_pretrained(folder)


def test_unknown_vision_tower_is_a_clear_error(tmp_path):
    folder, _, _ = write_published(tmp_path / "m", "lavida-llada", tmp_path / "siglip")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "mm_vision_tower": "/nowhere/siglip-tiny"}))
    with pytest.raises(CheckpointError, match="cannot tell the vision tower's architecture"):
        dvlm.load_pretrained(folder)


def test_cli_convert_then_generate_with_an_image(tmp_path, image):
    from typer.testing import CliRunner

    from dvlm.core.cli import app

    folder, _, _ = write_published(tmp_path / "lavida", "lavida-llada", tmp_path / "siglip")
    image().save(tmp_path / "photo.png")
    runner = CliRunner()
    converted = runner.invoke(app, ["convert", str(folder), str(tmp_path / "out")])
    assert converted.exit_code == 0, converted.output
    assert "wrote" in converted.output
    args = ["generate", "--checkpoint", str(tmp_path / "out"), "--prompt", "What is it?", "--image",
            str(tmp_path / "photo.png"), "--sampler", "lavida", "--set", "gen_length=8", "--set", "steps=4", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["token_ids"][0]) == 8
