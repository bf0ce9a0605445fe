"""Training: the ``dvlm train`` spec, loop, optimiser, checkpoints and multi-process runs."""
