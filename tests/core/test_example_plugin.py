"""The example third-party package, pip-installed for real and discovered through its entry point."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "dvlm-plugin-example"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    """``pip install`` the example package into its own folder; subprocesses see it through PYTHONPATH."""
    target = tmp_path_factory.mktemp("example_site")
    source = tmp_path_factory.mktemp("example_src") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source)  # pip builds in the source tree: keep the checkout clean
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return target


def with_site(site) -> str:
    """PYTHONPATH with the example's install folder first, then this checkout's dvlm (the one under test)."""
    return os.pathsep.join([str(site), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


def dvlm(site, *args, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DVLM_")}
    environ.update(PYTHONPATH=with_site(site), **env)
    return subprocess.run([sys.executable, "-m", "dvlm", *args], capture_output=True, text=True, env=environ,
                          timeout=120)


def kinds(site, **env):
    result = dvlm(site, "plugins", "--json", **env)
    assert result.returncode == 0, result.stderr
    return {(row["family"], row["kind"]): row for row in json.loads(result.stdout)["kinds"]}


def test_discovered_and_listed_with_its_version(example_site):
    listed = kinds(example_site)
    for kind in [("schedules", "geometric"), ("backbones", "toy_mdm"), ("checkpoint_layouts", "toy-lab")]:
        row = listed[kind]
        assert (row["distribution"], row["version"], row["plugin"]) == ("dvlm-plugin-example", "0.2.0", "example")
    table = dvlm(example_site, "plugins", COLUMNS="200").stdout
    assert "geometric" in table and "dvlm-plugin-example" in table and "0.2.0" in table


def test_appears_in_the_schema(example_site):
    schema = dvlm(example_site, "schema").stdout
    assert "GeometricScheduleParams" in schema and '"geometric"' in schema


def test_can_be_disabled(example_site):
    assert ("schedules", "geometric") not in kinds(example_site, DVLM_DISABLE_PLUGINS="example")


@pytest.mark.parametrize("allow, present", [("example", True), ("dvlm-plugin-example", True), ("someone-else", False)])
def test_allowlist(example_site, allow, present):
    assert (("schedules", "geometric") in kinds(example_site, DVLM_PLUGINS=allow)) is present


def test_validates_inside_a_spec_like_a_builtin(example_site, tmp_path):
    spec = tmp_path / "sampler.yaml"
    spec.write_text("spec: sampler\nkind: fixed_count\ngen_length: 32\nsteps: 16\nblock_length: 32\n"
                    "schedule: {kind: geo, ratio: 0.5}\n")
    result = dvlm(example_site, "validate", str(spec))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) == 64  # the spec hash
    typo = tmp_path / "typo.yaml"
    typo.write_text(spec.read_text().replace("ratio", "raito"))
    result = dvlm(example_site, "validate", str(typo))
    assert result.returncode == 1 and "schedule.raito" in result.stderr
    disabled = dvlm(example_site, "validate", str(spec), DVLM_DISABLE_PLUGINS="example")
    assert disabled.returncode == 1 and "schedule" in disabled.stderr


def test_the_package_passes_the_conformance_kit(example_site):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": with_site(example_site)}, cwd=example_site,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout and "skipped" not in result.stdout


GENERATE_WITH_THE_RULE = """
import json, sys, torch
import dvlm
model = dvlm.load_pretrained(sys.argv[1])
out = {}
for sampler in ("llada-reference", "lavida-coco", "fast-dllm", "dream"):
    spec = {"kind": "dream", "steps": 8} if sampler == "dream" else sampler
    sets = ["gen_length=16", "commit_rule=leftmost"] + (["block_length=8"] if sampler != "dream" else [])
    sets += ["steps=4"] if sampler == "lavida-coco" else []  # 2 steps per block: several commits per step
    result = dvlm.generate(model, [[1, 2, 3], [4, 5, 6, 7, 8]], sampler=spec, overrides=sets, trace=True)
    out[sampler] = [[e.committed[b].nonzero().flatten().tolist() for e in result.steps] for b in range(2)]
print(json.dumps(out))
"""


def test_its_commit_rule_drives_every_stock_sampler(example_site):
    """Installed through its entry point, the package's ``leftmost`` rule is honoured by fixed_count (two presets),
    parallel (no schedule: one position per step) and dream, with no change to dvlm."""
    result = subprocess.run(
        [sys.executable, "-c", GENERATE_WITH_THE_RULE, str(ROOT / "tests" / "fixtures" / "llada_tiny")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": with_site(example_site), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    committed = json.loads(result.stdout)
    for sampler, rows in committed.items():
        for steps in rows:
            order = [position for step in steps for position in step]
            assert order == list(range(16)), (sampler, steps)  # left to right, every position once
    assert all(len(step) == 1 for step in committed["fast-dllm"][0])  # per_step = 1 under parallel
    assert any(len(step) > 1 for step in committed["lavida-coco"][0])  # the schedule's counts under fixed_count
