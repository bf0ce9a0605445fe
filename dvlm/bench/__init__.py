"""Benchmark matrices: expansion into cells, provenance, and the resumable JSONL results store."""
