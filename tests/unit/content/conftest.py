"""Fixtures for the content store tests: a fresh store in a private temp dir."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.content import LocalContentStore


@pytest.fixture
def content_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pycontainerd-content-"))
    try:
        yield root / "io.containerd.content.v1.content"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def store(content_root: Path) -> LocalContentStore:
    return LocalContentStore(content_root)
