"""lmms-eval's entry point (group ``lmms_eval.models``, declared in pyproject.toml): ``--model dvlm``.

lmms-eval calls ``manifests()`` while ``lmms_eval.models`` initialises, so this module imports only the
manifest class; the model class (``dvlm.eval.lmms_model.DvlmLmms``) is imported when ``--model dvlm`` is
asked for. Only a *simple* class is registered (the task builds the prompt, the model fetches the images),
because lmms-eval's chat classes cannot serve ``multiple_choice`` tasks.
"""

from __future__ import annotations


def manifests():
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id="dvlm", simple_class_path="dvlm.eval.lmms_model.DvlmLmms")]
