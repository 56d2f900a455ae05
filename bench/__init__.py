"""Benchmarks: `make bench` runs them. Each prints its figures; none is a timed test."""
