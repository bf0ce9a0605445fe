"""Named settings shipped with dvlm: ``samplers/<name>.yaml`` (``dvlm generate --sampler lavida-coco``) and
training recipes ``recipes/<name>.yaml`` (``dvlm train lavida-stage2``)."""

from pathlib import Path

RECIPES = Path(__file__).parent / "recipes"
