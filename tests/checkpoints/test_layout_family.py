"""Checkpoint layouts as a registered family (issue #13): listed with their origin, written back into the
published layout with the real key names and index, one claim per folder, hub ids, ``dvlm inspect``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

import dvlm
from dvlm.core.errors import CheckpointError
from dvlm.core.plugins import add_plugin, remove_plugin
from dvlm.core.specs import ComponentParams
from dvlm.testing import check_kind, check_layout_round_trip, parametrize_kinds
from tests.checkpoints.conftest import REAL, TEXT, run_cli

BUILTIN = ["dvlm", "llada", "llada-llama", "dream", "lavida-llada", "llada-v", "lavida-dream"]


def load(folder, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dvlm.load_pretrained(folder, **kwargs)


def dvlm_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dvlm", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@parametrize_kinds(families=("checkpoint_layouts",))
def test_conformance(family, kind):
    check_kind(family, kind)


def test_plugins_lists_every_layout_with_its_origin():
    result = dvlm_cli("plugins", "--json")
    rows = {r["kind"]: r for r in json.loads(result.stdout)["kinds"] if r["family"] == "checkpoint_layouts"}
    assert set(BUILTIN) <= set(rows)
    assert all(rows[k]["distribution"] == "dvlm" and rows[k]["plugin"] == "dvlm.checkpoint_layouts" for k in BUILTIN)


@pytest.mark.parametrize("layout", list(TEXT))
def test_convert_to_a_published_layout_writes_the_real_key_names_and_index(real_folder, tmp_path, layout):
    source = real_folder(layout)
    assert run_cli("convert", source, tmp_path / "dvlm").exit_code == 0
    result = run_cli("convert", tmp_path / "dvlm", tmp_path / "published", "--to", layout)
    assert result.exit_code == 0, result.output
    real = json.loads((REAL / TEXT[layout] / "model.safetensors.index.json").read_text())["weight_map"]
    written = json.loads((tmp_path / "published" / "model.safetensors.index.json").read_text())["weight_map"] if (
        tmp_path / "published" / "model.safetensors.index.json").is_file() else None
    from dvlm.core.safetensors_io import read_header, shard_files

    names = {e.name for f in shard_files(tmp_path / "published") for e in read_header(f)}
    assert names == set(real)
    if written is not None:
        assert set(written) == set(real) and all(v.startswith("model-") for v in written.values())
    config = json.loads((tmp_path / "published" / "config.json").read_text())
    real_config = json.loads((REAL / TEXT[layout] / "config.json").read_text())
    assert config["model_type"] == real_config["model_type"] and config["architectures"] == real_config["architectures"]
    original, again = load(source), load(tmp_path / "published")
    ids = torch.randint(0, 1000, (1, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(again(ids), original(ids))
    assert again.tokenizer is not None and again.spec.chat_template == original.spec.chat_template


def test_sharded_export_matches_the_real_shard_naming(real_folder, tmp_path):
    model = load(real_folder("llada"))
    dvlm.registry()  # the layouts are registered kinds
    from dvlm.core.checkpoint import get_layout

    get_layout("llada").write(model, tmp_path / "out", max_shard_bytes=2_000_000)
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 1 and files[0] == f"model-00001-of-{len(files):05d}.safetensors"


@pytest.mark.parametrize("layout", ["lavida-llada", "llada-v", "lavida-dream", "dvlm"])
def test_multimodal_round_trip_through_its_published_layout(real_folder, tmp_path, layout):
    model = load(real_folder("llada-v" if layout == "dvlm" else layout))
    again = check_layout_round_trip(layout, model, tmp_path / "out")
    assert again.spec.image_layout == model.spec.image_layout and again.spec.vision_encoder == model.spec.vision_encoder


class ClaimAll:
    name, summary = "claim-all", "claims every folder with a config.json"

    def __init__(self, params):
        pass

    def detect(self, folder):
        return (folder / "config.json").is_file()


class GreedyPlugin:
    @dvlm.hookimpl
    def dvlm_register_checkpoint_layouts(self, register):
        from typing import Literal

        params = type("ClaimAllParams", (ComponentParams,), {"__annotations__": {"kind": Literal["claim-all"]},
                                                             "kind": "claim-all"})
        register("claim-all", ClaimAll, params)


def test_two_layouts_claiming_one_folder_is_an_error_naming_both(real_folder):
    add_plugin(GreedyPlugin(), "greedy")
    try:
        with pytest.raises(CheckpointError, match="claimed by more than one checkpoint layout") as err:
            dvlm.load_pretrained(real_folder("dream"))
        assert "'claim-all' (plugin 'greedy'" in str(err.value)
        assert "'dream' (plugin 'dvlm.checkpoint_layouts' from dvlm" in str(err.value)
    finally:
        remove_plugin("greedy")


def test_hub_id_resolves_offline_from_the_cache(real_folder, tmp_path):
    snapshot = tmp_path / "hf" / "hub" / "models--Dream-org--Dream-v0-Instruct-7B" / "snapshots" / ("a" * 40)
    import shutil

    shutil.copytree(real_folder("dream"), snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = dvlm_cli("generate", "--checkpoint", "Dream-org/Dream-v0-Instruct-7B", "--prompt", "Hi", "--sampler",
                      "dream", "--set", "gen_length=8", "--set", "steps=4", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["token_ids"][0]) == 8
    missing = dvlm_cli("inspect", "GSAI-ML/LLaDA-V", env=env)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "GSAI-ML/LLaDA-V" in missing.stderr and "HF_HUB_OFFLINE=1" in missing.stderr


def test_inspect_reports_layout_dtype_token_sources_template_and_quirks(real_folder):
    result = run_cli("inspect", real_folder("llada"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layout"] == "llada" and report["dtype"] == "bfloat16"
    assert report["dtype_source"] == "safetensors headers"  # LLaDA-8B's config has no torch_dtype
    assert report["special_tokens"]["mask_token_id"] == {"id": 126336, "source": "config.json mask_token_id"}
    assert report["special_tokens"]["bos_token_id"] == {"id": 126080, "source": "generation_config.json bos_token_id"}
    assert report["chat_template"] == {"kind": "tokenizer"}
    assert report["example_prompt"].startswith("<|startoftext|><|start_header_id|>user")
    assert any("torch_dtype" in quirk for quirk in report["quirks"])


def test_inspect_a_multimodal_folder(real_folder):
    report = json.loads(run_cli("inspect", real_folder("llada-v"), "--json").stdout)
    assert report["layout"] == "llada-v" and report["text_after_image"] == "llava_inference"
    assert report["image_layout"]["kind"] == "anyres_max" and report["vision_encoder"]["kind"] == "siglip"
    assert any("128000" in quirk for quirk in report["quirks"])
    assert any("tokenizer_image_token" in quirk for quirk in report["quirks"])


def test_serve_and_lmms_eval_load_a_text_folder_with_its_chat_template(real_folder):
    from dvlm.eval.lmms_model import load_model
    from dvlm.serve.app import load_demo

    demo = load_demo(real_folder("dream"), sampler="dream")
    assert demo.model.tokenizer is not None and demo.model.spec.chat_template.kind == "tokenizer"
    model = load_model(str(real_folder("llada")), "cpu", None)
    assert model.spec.chat_template.kind == "tokenizer" and model.dtype == torch.bfloat16
