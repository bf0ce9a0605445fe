"""Named settings shipped with dvlm (``samplers/<name>.yaml``): ``dvlm generate --sampler lavida-coco``."""
