"""Writing a checkpoint never destroys one: a destination that already holds a checkpoint is refused unless the
caller says ``--overwrite`` / ``overwrite=True``; a layout refuses, before writing anything, a model of the other
backbone family or (text-only layouts) a vision-language model; ``dvlm inspect`` names a spec.json + config.json
folder for what it is."""

from __future__ import annotations

import hashlib
import shutil
import warnings

import pytest

import dvlm
from dvlm.core.checkpoint import get_layout, save_pretrained
from dvlm.core.errors import CheckpointError
from tests.checkpoints.conftest import run_cli


def load(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dvlm.load_pretrained(folder)


def digest(folder):
    """Every file of ``folder`` (relative name -> sha256), to show nothing changed."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def published(real_folder, tmp_path):
    """A writable copy of the tiny published LLaDA folder (the session's folders are read-only use)."""
    return shutil.copytree(real_folder("llada"), tmp_path / "published")


def test_convert_into_a_published_folder_is_refused_and_loses_nothing(real_folder, published, tmp_path):
    assert run_cli("convert", real_folder("llada"), tmp_path / "ckpt").exit_code == 0
    before = digest(published)
    result = run_cli("convert", tmp_path / "ckpt", published)
    assert isinstance(result.exception, CheckpointError), result.output
    message = str(result.exception)
    assert str(published) in message and "'llada' checkpoint" in message and "model.safetensors.index.json" in message
    assert "--overwrite" in message and "new destination folder" in message
    assert digest(published) == before


def test_convert_with_overwrite_replaces_the_checkpoint_with_a_loadable_one(real_folder, published, tmp_path):
    assert run_cli("convert", real_folder("llada"), tmp_path / "ckpt").exit_code == 0
    result = run_cli("convert", tmp_path / "ckpt", published, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (published / "config.json").exists() and (published / "spec.json").is_file()
    assert not list(published.glob("model-*-of-*.safetensors"))  # the published shards were replaced
    again = load(published)  # one checkpoint again, not a spec.json + config.json mix
    assert again.state_dict().keys() == load(real_folder("llada")).state_dict().keys()
    # and back: a published layout over a dvlm checkpoint drops the spec.json it replaces
    assert run_cli("convert", real_folder("llada"), published, "--to", "llada", "--overwrite").exit_code == 0
    assert not (published / "spec.json").exists() and dvlm.core.checkpoint.detect_layout(published)[0] == "llada"


@pytest.mark.parametrize("marker", ["config.json", "spec.json", "model.safetensors"])
def test_every_writer_refuses_a_folder_with_checkpoint_files(real_folder, tmp_path, marker):
    model = load(real_folder("llada"))
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / marker).write_text("{}")
    for write in (lambda: save_pretrained(model, folder), lambda: get_layout("llada").write(model, folder),
                  lambda: get_layout("dvlm").write(model, folder)):
        with pytest.raises(CheckpointError, match="overwrite=True"):
            write()
    assert [p.name for p in folder.iterdir()] == [marker] and (folder / marker).read_text() == "{}"


def test_writing_into_an_empty_or_unrelated_folder_still_works(real_folder, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    save_pretrained(load(real_folder("llada")), folder)
    assert (folder / "spec.json").is_file() and (folder / "notes.txt").read_text() == "mine"


def test_inspect_of_a_spec_and_config_folder_names_both_files_not_plugins(real_folder, published, tmp_path):
    save_pretrained(load(real_folder("llada")), tmp_path / "ckpt")
    shutil.copy(tmp_path / "ckpt" / "spec.json", published / "spec.json")
    for result in (run_cli("inspect", published), run_cli("inspect", published, "--json")):
        assert isinstance(result.exception, CheckpointError), result.output
        message = str(result.exception)
        assert "holds both spec.json" in message and "config.json" in message
        assert "DVLM_DISABLE_PLUGINS" not in message and "more than one checkpoint layout" not in message
    with pytest.raises(CheckpointError) as err:
        load(published)
    assert str(err.value) == str(run_cli("inspect", published).exception)


@pytest.mark.parametrize("source,to,kind,fits", [
    ("lavida-llada", "lavida-dream", "llada", ["lavida-llada", "llada-v", "dvlm"]),
    ("dream", "llada", "dream", ["dream", "dvlm"]),
    ("llada", "dream", "llada", ["llada", "llada-llama", "dvlm"]),
])
def test_a_layout_of_the_other_backbone_family_is_refused_before_writing(real_folder, tmp_path, source, to, kind,
                                                                          fits):
    result = run_cli("convert", real_folder(source), tmp_path / "out", "--to", to)
    assert isinstance(result.exception, CheckpointError), result.output
    message = str(result.exception)
    assert f"'{to}' layout" in message and f"backbone is '{kind}'" in message
    assert message.endswith(", ".join(fits))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source,to,fits", [
    ("lavida-llada", "llada", "lavida-llada, llada-v, dvlm"),
    ("llada-v", "llada-llama", "lavida-llada, llada-v, dvlm"),
    ("lavida-dream", "dream", "lavida-dream, dvlm"),
])
def test_a_text_only_layout_refuses_a_vision_language_model(real_folder, tmp_path, source, to, fits):
    result = run_cli("convert", real_folder(source), tmp_path / "out", "--to", to)
    assert isinstance(result.exception, CheckpointError), result.output
    message = str(result.exception)
    assert f"'{to}' layout is text-only" in message and "vision encoder" in message
    assert message.endswith(f"keeps the vision parts: {fits}")
    assert not (tmp_path / "out").exists()
