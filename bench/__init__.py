"""Benchmarks (`make bench`): each prints its figure beside its reference, in one run."""
