"""Benchmarks: `make bench` (bench/run.py) and the in-process validator comparison (bench/validator.py)."""
