import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import dvlm
from tests.single_thread import one_thread  # noqa: F401  (autouse)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_cases(name: str, kinds: tuple[str, ...]) -> list[tuple[dict, dict[str, torch.Tensor]]]:
    """``(case, {role: tensor})`` for every case of the given kinds in ``tests/fixtures/<name>``."""
    meta = json.loads((FIXTURES / name / "cases.json").read_text())
    tensors = load_file(FIXTURES / name / meta["tensor_file"])
    return [(c, {role: tensors[key] for role, key in c["tensors"].items()})
            for c in meta["cases"] if c["kind"] in kinds]


def schedules_fixture() -> dict:
    return json.loads((FIXTURES / "schedules" / "schedules.json").read_text())


@pytest.fixture(scope="session")
def llada():
    return dvlm.load_pretrained(FIXTURES / "llada_tiny", dtype="float32").backbone


@pytest.fixture(scope="session")
def dream():
    return dvlm.load_pretrained(FIXTURES / "dream_tiny", dtype="float32").backbone


def with_tokens(model, **token_ids):
    """A copy of a tiny backbone with the same weights and extra token roles (e.g. eot_token_id=252)."""
    from dvlm.core.plugins import get_registry

    params = type(model.params).model_validate({**model.params.model_dump(), **token_ids})
    copy = get_registry().build("backbones", params)
    copy.load_state_dict(model.state_dict())
    return copy.eval()


def prompts(batch: int, length: int, seed: int, vocab: int = 240) -> torch.Tensor:
    """Random prompt ids below the special tokens of the tiny fixtures (mask 250, eos/pad 251)."""
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))
