"""Benchmarks: every figure measured in the run that prints it, beside an in-run floor."""
