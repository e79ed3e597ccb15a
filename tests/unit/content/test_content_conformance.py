"""Every content store implementation runs the one conformance suite.

Implementations: the namespaced store on a fresh root, and the same store in a
namespace whose blobs another namespace already holds on disk (containerd's
"isolated" sharing: the bytes must still be written and checked).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pycontainerd import errdefs
from pycontainerd.content import LocalContentStore
from pycontainerd.content.api import ContentStore
from pycontainerd.metadata.content import NamespacedContentStore
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.store import MetadataStore
from tests.unit.content.conformance import CASES, Case

Implementation = Callable[[Path], tuple[ContentStore, str]]


def _fresh(root: Path) -> tuple[ContentStore, str]:
    return _metadata(root).content, "conformance"


class _SharedBackend:
    """The namespaced store, with every commit's bytes put on disk first through
    a twin namespace: the blob exists in the backend but not in this namespace."""

    def __init__(self, root: Path) -> None:
        self.store = _metadata(root).content
        self.written: dict[tuple[str, str], bytearray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def writer(
        self, namespace: str, ref: str, total: int = 0, expected: Any = None, lease: str = ""
    ) -> _TwinWriter:
        inner = self.store.writer(namespace, ref, total, expected, lease)
        written = self.written.setdefault((namespace, ref), bytearray())
        del written[inner.status().offset :]
        return _TwinWriter(self.store, namespace, inner, written)


class _TwinWriter:
    def __init__(
        self, store: NamespacedContentStore, namespace: str, inner: Any, written: bytearray
    ) -> None:
        self._store, self._namespace, self._inner, self._written = store, namespace, inner, written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write(self, data: bytes) -> int:
        self._written += data
        return self._inner.write(data)

    def truncate(self, size: int = 0) -> None:
        del self._written[size:]
        self._inner.truncate(size)

    def commit(self, size: int, expected: Any, labels: dict[str, str]) -> str:
        twin = self._store.writer("twin-" + self._namespace, "twin-" + self._inner.ref)
        try:
            twin.truncate(0)
            twin.write(bytes(self._written))
            with contextlib.suppress(errdefs.AlreadyExists):
                twin.commit(0, None, {})
        finally:
            twin.close()
        return self._inner.commit(size, expected, labels)


def _shared(root: Path) -> tuple[ContentStore, str]:
    return _SharedBackend(root), "conformance"  # type: ignore[return-value]


def _metadata(root: Path) -> MetadataStore:
    return MetadataStore(Database(root / "meta.db"), LocalContentStore(root / "content"))


@pytest.fixture(params=[_fresh, _shared], ids=["fresh", "blobs-already-on-disk"])
def implementation(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ContentStore, str]]:
    store, namespace = request.param(tmp_path)
    yield store, namespace


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_conformance(implementation: tuple[ContentStore, str], case: Case) -> None:
    store, namespace = implementation
    case(store, namespace)
