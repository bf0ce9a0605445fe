"""Evaluation tasks: synthetic-shapes VQA (exact match), captioning (CIDEr), constrained captioning (infill),
and any local LLaVA-format set."""

import dvlm
from dvlm.plugins.tasks.params import (
    LlavaJsonParams, ShapesCaptionInfillParams, ShapesCaptionParams, ShapesVqaParams,
)


@dvlm.hookimpl
def dvlm_register_tasks(register):
    register("shapes_vqa", "dvlm.plugins.tasks.llava_json:shapes_vqa", ShapesVqaParams)
    register("shapes_caption", "dvlm.plugins.tasks.llava_json:shapes_caption", ShapesCaptionParams)
    register("shapes_caption_infill", "dvlm.plugins.tasks.llava_json:shapes_caption_infill",
             ShapesCaptionInfillParams)
    register("llava_json", "dvlm.plugins.tasks.llava_json:LlavaJsonTask", LlavaJsonParams)
