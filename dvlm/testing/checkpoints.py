"""Conformance of checkpoint layouts: the contract every ``checkpoint_layouts`` kind honours, and a round trip
(write a model into the layout, detect it, read it back to the same weights and logits) that a plugin runs with
a tiny model of its own."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any


def check_checkpoint_layout(layout: Any) -> None:
    """The layout satisfies ``CheckpointLayout`` and claims no empty folder."""
    from dvlm.core.interfaces import CheckpointLayout

    assert isinstance(layout, CheckpointLayout), "missing CheckpointLayout attributes (dvlm.core.interfaces)"
    assert isinstance(layout.name, str) and layout.name and isinstance(layout.summary, str) and layout.summary
    with tempfile.TemporaryDirectory() as empty:
        assert layout.detect(Path(empty)) is False, "a layout must not claim an empty folder"


def check_layout_round_trip(kind: str, model: Any, folder: str | Path) -> Any:
    """Write ``model`` (a ``DiffusionVLM``) with layout ``kind`` into ``folder``; only that layout claims the folder;
    ``dvlm.load_pretrained`` reads back the same tensors, logits and spec. Returns the reloaded model."""
    import torch

    import dvlm
    from dvlm.core.checkpoint import detect_layout, get_layout

    folder = Path(folder)
    get_layout(kind).write(model, folder)
    found, _ = detect_layout(folder)
    assert found == kind, f"the folder written by '{kind}' is claimed by '{found}'"
    again = dvlm.load_pretrained(folder)
    assert again.state_dict().keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), f"tensor {name} changed in the round trip"
    ids = torch.randint(0, model.backbone.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(again(ids), model(ids)), "logits changed in the round trip"
    return again
