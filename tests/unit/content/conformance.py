"""The content store conformance suite: what every ``ContentStore`` must do.

Like containerd's content/testsuite, each case takes a store and a namespace
and checks one behaviour of the interface (pycontainerd.content.api), never an
implementation detail. ``test_content_conformance.py`` runs every case against
every implementation.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import pytest

from pycontainerd import errdefs
from pycontainerd.content.api import ContentStore
from pycontainerd.content.models import ContentInfo
from pycontainerd.digest import Digest

Case = Callable[[ContentStore, str], None]
CASES: list[Case] = []


def case(fn: Case) -> Case:
    CASES.append(fn)
    return fn


def blob(size: int = 4096) -> tuple[bytes, Digest]:
    data = os.urandom(size)
    return data, Digest("sha256:" + hashlib.sha256(data).hexdigest())


def commit(store: ContentStore, ns: str, data: bytes, ref: str = "ref") -> str:
    writer = store.writer(ns, ref, total=len(data))
    try:
        writer.write(data)
        return writer.commit(len(data), None, {})
    finally:
        writer.close()


def read_all(store: ContentStore, ns: str, digest: str, offset: int = 0, size: int = 0) -> bytes:
    _, _, chunks = store.read(ns, digest, offset, size)
    return b"".join(chunks)


@case
def write_then_read(store: ContentStore, ns: str) -> None:
    data, digest = blob(3 << 20)
    assert commit(store, ns, data) == digest
    assert store.info(ns, digest).size == len(data)
    assert store.exists(ns, digest)
    assert read_all(store, ns, digest) == data


@case
def read_ranges(store: ContentStore, ns: str) -> None:
    data, digest = blob(10_000)
    commit(store, ns, data)
    assert read_all(store, ns, digest, 100, 50) == data[100:150]
    assert read_all(store, ns, digest, 9_990, 0) == data[9_990:]
    assert read_all(store, ns, digest, 9_990, 1_000) == data[9_990:]
    assert read_all(store, ns, digest, len(data), 0) == b""
    with pytest.raises(errdefs.OutOfRange):
        store.read(ns, digest, len(data) + 1, 0)


@case
def writes_resume_after_close(store: ContentStore, ns: str) -> None:
    data, digest = blob(8192)
    first = store.writer(ns, "resume", total=len(data))
    first.write(data[:3000])
    first.close()
    second = store.writer(ns, "resume")
    try:
        assert second.status().offset == 3000
        second.write(data[3000:])
        assert second.digest() == digest
        assert second.commit(len(data), digest, {}) == digest
    finally:
        second.close()


@case
def truncate_starts_over(store: ContentStore, ns: str) -> None:
    data, digest = blob()
    writer = store.writer(ns, "again")
    try:
        writer.write(b"garbage that is not the blob")
        writer.truncate(0)
        assert writer.status().offset == 0
        writer.write(data)
        assert writer.commit(len(data), digest, {}) == digest
    finally:
        writer.close()


@case
def commit_checks_size_and_digest(store: ContentStore, ns: str) -> None:
    data, digest = blob()
    writer = store.writer(ns, "checked")
    try:
        writer.write(data)
        with pytest.raises(errdefs.FailedPrecondition):
            writer.commit(len(data) + 1, None, {})
        _, other = blob()
        with pytest.raises(errdefs.FailedPrecondition):
            writer.commit(len(data), other, {})
        assert not store.exists(ns, digest)
        # The write stays open after a failed check.
        assert writer.commit(len(data), digest, {}) == digest
    finally:
        writer.close()


@case
def commit_of_existing_content_ends_the_write(store: ContentStore, ns: str) -> None:
    data, digest = blob()
    commit(store, ns, data, ref="first")
    writer = store.writer(ns, "second")
    try:
        writer.write(data)
        with pytest.raises(errdefs.AlreadyExists):
            writer.commit(len(data), digest, {})
    finally:
        writer.close()
    # As containerd: the next writer with that ref starts at offset 0.
    again = store.writer(ns, "second")
    try:
        assert again.status().offset == 0
    finally:
        again.close()


@case
def opening_a_write_of_existing_content_is_refused(store: ContentStore, ns: str) -> None:
    data, digest = blob()
    commit(store, ns, data)
    with pytest.raises(errdefs.AlreadyExists):
        store.writer(ns, "late", expected=digest)


@case
def statuses_and_abort(store: ContentStore, ns: str) -> None:
    writer = store.writer(ns, "pending", total=10)
    try:
        writer.write(b"12345")
    finally:
        writer.close()
    status = store.status(ns, "pending")
    assert (status.ref, status.offset, status.total) == ("pending", 5, 10)
    assert [s.ref for s in store.list_statuses(ns)] == ["pending"]
    store.abort(ns, "pending")
    assert store.list_statuses(ns) == []
    with pytest.raises(errdefs.NotFound):
        store.status(ns, "pending")
    with pytest.raises(errdefs.NotFound):
        store.abort(ns, "pending")


@case
def labels_from_commit_and_update(store: ContentStore, ns: str) -> None:
    data, digest = blob()
    writer = store.writer(ns, "labelled")
    try:
        writer.write(data)
        writer.commit(len(data), digest, {"a": "1", "b": "2"})
    finally:
        writer.close()
    assert store.info(ns, digest).labels == {"a": "1", "b": "2"}
    updated = store.update(ns, ContentInfo(digest, 0, {"b": "3"}), ["labels.b"])
    assert updated.labels == {"a": "1", "b": "3"}
    replaced = store.update(ns, ContentInfo(digest, 0, {"c": "4"}), [])
    assert replaced.labels == {"c": "4"}


@case
def list_and_delete(store: ContentStore, ns: str) -> None:
    data, digest = blob()
    commit(store, ns, data)
    assert digest in [i.digest for i in store.list(ns)]
    store.delete(ns, digest)
    assert not store.exists(ns, digest)
    with pytest.raises(errdefs.NotFound):
        store.info(ns, digest)
    with pytest.raises(errdefs.NotFound):
        store.delete(ns, digest)


@case
def unknown_content_is_not_found(store: ContentStore, ns: str) -> None:
    _, digest = blob()
    with pytest.raises(errdefs.NotFound):
        store.info(ns, digest)
    with pytest.raises(errdefs.NotFound):
        store.read(ns, digest, 0, 0)
    with pytest.raises(errdefs.InvalidArgument):
        store.info(ns, "sha256:not-hex")
