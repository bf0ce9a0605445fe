"""The CLI end to end, in subprocesses (as a user runs it)."""

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("transformers", "timm", "open_clip")


def run(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "dvlm", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120)


def test_import_dvlm_stays_light():
    code = "import sys, dvlm; print([m for m in %r if m in sys.modules])" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("argv", [["--help"], ["plugins", "--json"], ["schema"]])
def test_help_plugin_listing_and_schema_import_no_heavy_library(argv):
    code = (
        "import sys\n"
        f"sys.argv = ['dvlm', *{argv!r}]\n"
        "from dvlm.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "HEAVY []"


def test_plugins_json_lists_builtin_kinds_with_their_distribution():
    result = run("plugins", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["failures"] == {}
    assert all(row["distribution"] == "dvlm" for row in listing["kinds"])


def test_validate_fails_cleanly_on_an_unknown_kind(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text("spec: model\nbackbone: {kind: toy, width: 3}\n")
    env = {"PYTHONPATH": os.getcwd()}
    result = run("validate", str(path), env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "toy.yaml" in result.stderr and "backbone" in result.stderr


def test_validate_reports_yaml_errors_with_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("spec: model\nbackbone:\n  kind: llada\n   oops: 1\n")
    result = run("validate", str(path))
    assert result.returncode == 1
    assert "bad.yaml line 4" in result.stderr and "Traceback" not in result.stderr


def test_schema_is_json_with_every_document_type():
    result = run("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert {"model", "sampler"} <= set(schema["documents"])
    assert {"backbones", "schedules", "samplers"} <= set(schema["families"])


def test_validate_prints_the_hash_of_a_valid_spec(tmp_path):
    spec = tmp_path / "model.yaml"
    spec.write_text("spec: model\nbackbone:\n  kind: llada\n  n_layers: 2\n")
    result = run("validate", str(spec))
    assert result.returncode == 0, result.stderr
    digest = result.stdout.strip()
    assert len(digest) == 64 and int(digest, 16) >= 0
    reordered = tmp_path / "same.json"
    reordered.write_text(json.dumps({"backbone": {"n_layers": 2, "kind": "llada"}, "spec": "model"}))
    assert run("validate", str(reordered)).stdout.strip() == digest
