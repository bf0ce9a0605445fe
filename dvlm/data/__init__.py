"""Training data: LLaVA-format conversations, the synthetic shapes dataset, batching."""
