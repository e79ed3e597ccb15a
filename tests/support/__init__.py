"""Helpers shared by tests: a throwaway registry and deterministic test images."""
