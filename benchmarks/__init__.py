"""Benchmarks: `python -m benchmarks.<name>` prints a table of measured ratios (not tests)."""
