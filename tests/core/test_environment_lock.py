"""The dependency lock: the repository's lock pins what make installs, and drift is named, not discovered."""

import importlib.metadata as metadata
import subprocess
import sys
from pathlib import Path

import pytest

from dvlm.bench.provenance import provenance
from dvlm.core.environment_lock import (
    check, default_lock_path, freeze_text, installed_versions, lock_hash, normalize, read_lock, required_by_dvlm,
)
from dvlm.core.errors import DvlmError

ROOT = Path(__file__).resolve().parents[2]


def run_check(lock: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvlm.core.environment_lock", "check", "--lock", str(lock), *extra],
                          capture_output=True, text=True, timeout=120)


def test_the_repository_lock_pins_torch_and_the_lmms_eval_compatible_filelock():
    lock = read_lock(ROOT / "requirements.lock")
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1"
    # lmms-eval 0.7.3 imports filelock._api, which filelock 4.3 removed
    assert tuple(int(p) for p in lock["filelock"].split(".")[:2]) < (4, 3)
    assert default_lock_path() == ROOT / "requirements.lock"


def test_every_dvlm_requirement_with_the_test_extras_is_locked():
    lock = read_lock(ROOT / "requirements.lock")
    unlocked = [name for name in required_by_dvlm(("dev",)) if name not in lock]
    assert unlocked == [], f"requirements of dvlm[dev] missing from requirements.lock: {unlocked}"


def test_a_lock_of_this_environment_reports_no_drift(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(freeze_text(installed_versions()))
    result = run_check(lock)
    assert result.returncode == 0, result.stderr
    assert "environment matches" in result.stdout


def test_a_mismatched_version_fails_the_check_and_names_it(tmp_path):
    installed = installed_versions()
    installed["pluggy"] = "0.0.1"
    lock = tmp_path / "requirements.lock"
    lock.write_text(freeze_text(installed))
    result = run_check(lock)
    assert result.returncode == 1
    assert f"pluggy: locked 0.0.1, installed {metadata.version('pluggy')}" in result.stderr
    assert "make lock" in result.stderr  # says how to fix


def test_an_unlocked_package_and_a_missing_requirement_are_named():
    drift = check({"torch": "2.14.1"}, {"torch": "2.14.1", "surprise": "1.0"}, ["torch", "pydantic"])
    assert drift.unlocked == [("surprise", "1.0")] and drift.missing == ["pydantic"] and drift.mismatched == []
    assert "surprise: installed 1.0, not in the lock" in drift.message(Path("x.lock"))
    assert not check({"a": "1"}, {"a": "1"}, ["a"])  # a clean environment is falsy: no drift
    # locked but not installed (a test-only package in a main-job install) is fine
    assert not check({"a": "1", "ray": "2"}, {"a": "1"}, ["a"])


def test_a_malformed_lock_line_is_a_dvlm_error(tmp_path):
    lock = tmp_path / "bad.lock"
    lock.write_text("# header\ntorch>=2\n")
    with pytest.raises(DvlmError, match=r"bad.lock:2: 'torch>=2' is not a `name==version` pin"):
        read_lock(lock)
    assert run_check(lock).returncode == 2
    with pytest.raises(DvlmError, match="make lock"):
        read_lock(tmp_path / "absent.lock")


def test_names_are_normalized():
    assert normalize("Open_Clip.Torch") == "open-clip-torch"


def test_lock_hash_is_the_files_sha256_or_none(tmp_path):
    import hashlib

    assert lock_hash(tmp_path / "absent.lock") is None  # an installed wheel has no lock beside it
    (tmp_path / "a.lock").write_text("torch==2.14.1\n")
    assert lock_hash(tmp_path / "a.lock") == hashlib.sha256(b"torch==2.14.1\n").hexdigest()


def test_results_rows_carry_the_lock_hash():
    assert provenance()["lock_sha256"] == lock_hash(ROOT / "requirements.lock")
    assert len(lock_hash(ROOT / "requirements.lock")) == 64
