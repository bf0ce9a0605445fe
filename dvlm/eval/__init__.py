"""Evaluation: the lmms-eval model plugin (``dvlm.eval.lmms_model``, registered through the
``lmms_eval.models`` entry point by ``dvlm.eval.lmms_plugin``) and the local tasks shipped with dvlm.

Nothing here is imported by ``import dvlm``; this module itself imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent / "lmms_tasks"
"""The lmms-eval task folder shipped with dvlm: pass it as ``--include_path`` (tasks ``dvlm_shapes_*``)."""


def tasks_dir() -> Path:
    """The folder to pass to lmms-eval's ``--include_path`` for the ``dvlm_*`` tasks."""
    return TASKS_DIR
