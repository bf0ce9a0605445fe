"""Evaluation tasks: synthetic-shapes VQA (exact match) and captioning (CIDEr), and any local LLaVA-format set."""

import dvlm
from dvlm.plugins.tasks.params import LlavaJsonParams, ShapesCaptionParams, ShapesVqaParams


@dvlm.hookimpl
def dvlm_register_tasks(register):
    register("shapes_vqa", "dvlm.plugins.tasks.llava_json:shapes_vqa", ShapesVqaParams)
    register("shapes_caption", "dvlm.plugins.tasks.llava_json:shapes_caption", ShapesCaptionParams)
    register("llava_json", "dvlm.plugins.tasks.llava_json:LlavaJsonTask", LlavaJsonParams)
