"""Checkpoint folders: layouts, sharding, dtype choice, exact save/reload, and one clear error per fault."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import dvlm
from dvlm.core.checkpoint import save_pretrained
from dvlm.core.errors import CheckpointError
from tests.backbones.conftest import FIXTURES


def copy_fixture(name, tmp_path):
    return shutil.copytree(FIXTURES / name, tmp_path / name)


def edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def shard(folder, parts):
    """Rewrite ``model.safetensors`` as ``parts`` shards + index, like the published 8B folders."""
    state = load_file(folder / "model.safetensors")
    keys = list(state)
    names = [f"model-{i + 1:05d}-of-{parts:05d}.safetensors" for i in range(parts)]
    weight_map = {}
    for i, name in enumerate(names):
        part = {k: state[k] for k in keys[i::parts]}
        save_file(part, folder / name)
        weight_map.update(dict.fromkeys(part, name))
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return names


def assert_same_weights(a, b):
    assert a.state_dict().keys() == b.state_dict().keys()
    for key, value in a.state_dict().items():
        assert value.dtype == b.state_dict()[key].dtype and torch.equal(value, b.state_dict()[key]), key


@pytest.mark.parametrize("name", ["llada_tiny", "llada_v_tiny", "dream_tiny"])
def test_sharded_folder_loads_like_single_file(name, tmp_path):
    folder = copy_fixture(name, tmp_path)
    shard(folder, 3)
    assert_same_weights(dvlm.load_pretrained(folder), dvlm.load_pretrained(FIXTURES / name))


def test_loaded_model_has_no_meta_tensors_and_chosen_dtype():
    model = dvlm.load_pretrained(FIXTURES / "llada_tiny", dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert not any(p.is_meta for p in model.parameters())
    assert model.backbone.params.dtype == "bfloat16"
    fp16 = dvlm.load_pretrained(FIXTURES / "dream_tiny", dtype=torch.float16)
    assert {p.dtype for p in fp16.parameters()} == {torch.float16}
    ref = load_file(FIXTURES / "llada_tiny" / "model.safetensors")["model.transformer.wte.weight"]
    assert torch.equal(model.backbone.wte.weight, ref.to(torch.bfloat16))


@pytest.mark.parametrize("name,dtype", [("llada_tiny", "float32"), ("dream_tiny", "bfloat16"), ("llada_v_tiny", "float16")])
def test_save_then_reload_is_bit_identical(name, dtype, tmp_path):
    model = dvlm.load_pretrained(FIXTURES / name, dtype=dtype)
    save_pretrained(model, tmp_path / "a")
    again = dvlm.load_pretrained(tmp_path / "a")
    assert again.backbone.params == model.backbone.params
    assert_same_weights(again, model)
    ids = torch.randint(0, 250, (2, 12), generator=torch.Generator().manual_seed(1))
    assert torch.equal(again(ids), model(ids))
    # sharded save, overwriting the single-file checkpoint: stale files go, the result is the same
    save_pretrained(model, tmp_path / "a", max_shard_bytes=100_000, overwrite=True)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "model.safetensors" not in files and "model.safetensors.index.json" in files
    assert not [f for f in files if ".tmp" in f]
    assert_same_weights(dvlm.load_pretrained(tmp_path / "a"), model)


def test_saved_spec_is_a_model_spec(tmp_path):
    model = dvlm.load_pretrained(FIXTURES / "dream_tiny")
    save_pretrained(model, tmp_path)
    spec = dvlm.load_spec(tmp_path / "spec.json")
    assert spec.backbone == model.backbone.params


# -- one clear message per fault ---------------------------------------------------------------------


def test_missing_config_field_names_file_and_field(tmp_path):
    folder = copy_fixture("llada_tiny", tmp_path)
    edit_config(folder, n_heads=None)
    with pytest.raises(CheckpointError, match=r"llada_tiny/config\.json: missing field 'n_heads'"):
        dvlm.load_pretrained(folder)
    folder = copy_fixture("dream_tiny", tmp_path)
    edit_config(folder, hidden_size=None)
    with pytest.raises(CheckpointError, match=r"dream_tiny/config\.json: missing field 'hidden_size'"):
        dvlm.load_pretrained(folder)


def test_missing_mask_token_without_tokenizer_is_an_error(tmp_path):
    folder = copy_fixture("llada_v_tiny", tmp_path)
    edit_config(folder, mask_token_id=None)
    with pytest.raises(CheckpointError, match="missing field 'mask_token_id'.*<\\|mdm_mask\\|>"):
        dvlm.load_pretrained(folder)
    # the real LLaDA-V folder has no mask_token_id: the tokenizer's name table supplies it
    (folder / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {"249": {"content": "<|mdm_mask|>"}}}))
    assert dvlm.load_pretrained(folder).special_tokens.mask_id == 249


def test_unsupported_config_option_is_named(tmp_path):
    folder = copy_fixture("llada_tiny", tmp_path)
    edit_config(folder, weight_tying=True)
    with pytest.raises(CheckpointError, match="weight_tying=True is not supported"):
        dvlm.load_pretrained(folder)


def test_missing_shard_names_the_file(tmp_path):
    folder = copy_fixture("llada_tiny", tmp_path)
    names = shard(folder, 3)
    (folder / names[1]).unlink()
    with pytest.raises(CheckpointError, match=f"{names[1]}: shard listed in model.safetensors.index.json is missing"):
        dvlm.load_pretrained(folder)


@pytest.mark.parametrize("keep", [4, 100, -1000])
def test_truncated_shard_names_the_file(tmp_path, keep):
    folder = copy_fixture("dream_tiny", tmp_path)
    names = shard(folder, 2)
    path = folder / names[0]
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError, match=f"{names[0]}: truncated"):
        dvlm.load_pretrained(folder)


def test_no_weights_is_an_error(tmp_path):
    folder = copy_fixture("llada_tiny", tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights found"):
        dvlm.load_pretrained(folder)


def test_wrong_tensor_shape_names_key_and_both_shapes(tmp_path):
    folder = copy_fixture("llada_tiny", tmp_path)
    edit_config(folder, mlp_hidden_size=96)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor 'model\.transformer\.blocks\.0\.ff_\w+\.weight' has shape "
                                              r"\[(128, 64|64, 128)\] but the model built from .*config\.json "
                                              r"expects \[(96, 64|64, 96)\]"):
        dvlm.load_pretrained(folder)


def test_missing_and_unknown_tensors_are_listed(tmp_path):
    folder = copy_fixture("llada_tiny", tmp_path)
    state = load_file(folder / "model.safetensors")
    state.pop("model.transformer.ln_f.weight")
    state["model.transformer.extra.weight"] = torch.zeros(2)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.transformer.extra.weight"):
        dvlm.load_pretrained(folder)
    state.pop("model.transformer.extra.weight")
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing from the weights, e.g. backbone.ln_f.weight"):
        dvlm.load_pretrained(folder)


def test_unrecognised_layout_lists_the_supported_ones(tmp_path):
    folder = copy_fixture("llada_tiny", tmp_path)
    edit_config(folder, model_type="gpt2", architectures=["GPT2LMHeadModel"])
    with pytest.raises(CheckpointError) as err:
        dvlm.load_pretrained(folder)
    message = str(err.value)
    assert "model_type='gpt2'" in message and "GPT2LMHeadModel" in message
    for layout in ("dvlm", "llada", "llada-llama", "dream"):
        assert f"  - {layout}: " in message
    with pytest.raises(CheckpointError, match="neither config.json nor spec.json"):
        dvlm.load_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        dvlm.load_pretrained(tmp_path / "nope")


def test_invalid_json_config_names_line(tmp_path):
    folder = copy_fixture("dream_tiny", tmp_path)
    (folder / "config.json").write_text('{"model_type": "Dream",\n "hidden_size": }')
    with pytest.raises(CheckpointError, match=r"config\.json line 2, column 17: invalid JSON"):
        dvlm.load_pretrained(folder)
