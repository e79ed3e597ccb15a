"""Fixtures for the registry client tests: one real registry per kind per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.registry import TestRegistry

AUTH_USER, AUTH_SECRET = "alice", "wonderland"


@pytest.fixture(scope="session")
def registry() -> Iterator[TestRegistry]:
    with TestRegistry() as running:
        yield running


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[TestRegistry]:
    with TestRegistry(users={AUTH_USER: AUTH_SECRET}) as running:
        yield running


@pytest.fixture(scope="session")
def auth_credentials() -> tuple[str, str]:
    """The user and password ``auth_registry`` accepts."""
    return AUTH_USER, AUTH_SECRET
