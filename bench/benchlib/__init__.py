"""Shared helpers for the benchmarks in ``bench/`` (kept in a package so ``make bench`` does not run them)."""
