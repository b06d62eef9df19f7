"""Helpers shared by the golden generator (scripts/make_golden.py), the tests and the benchmarks."""
