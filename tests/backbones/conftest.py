import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_cases(name: str, kind: str) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """``(case name, {role: tensor})`` for every case of ``kind`` in ``tests/fixtures/<name>``."""
    meta = json.loads((FIXTURES / name / "cases.json").read_text())
    tensors = load_file(FIXTURES / name / meta["tensor_file"])
    return [
        (case["name"], {role: tensors[key] for role, key in case["tensors"].items()})
        for case in meta["cases"]
        if case["kind"] == kind
    ]


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield
