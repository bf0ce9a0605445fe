"""Built-in vision encoders: SigLIP / SigLIP 2 (transformers), CLIP (open_clip or transformers), timm ViTs.

Registration imports only the pydantic params models; the torch code (and transformers, open_clip,
timm) is imported on first build through lazy ``"module:attr"`` factories.
"""

from __future__ import annotations

import dvlm
from dvlm.plugins.vision.params import ClipParams, Siglip2Params, SiglipParams, TimmParams


@dvlm.hookimpl
def dvlm_register_vision_encoders(register):
    register("siglip", "dvlm.plugins.vision.siglip:build_siglip", SiglipParams)
    register("siglip2", "dvlm.plugins.vision.siglip:build_siglip", Siglip2Params)
    register("clip", "dvlm.plugins.vision.clip:build_clip", ClipParams)
    register("timm", "dvlm.plugins.vision.timm_vit:build_timm", TimmParams)
