"""Fetch behaviour the real registry cannot be made to show: broken transfers, no Range."""

from __future__ import annotations

import random

import pytest

from pycontainerd.errdefs import Unavailable
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.fetcher import VerifyingReader, read_all
from pycontainerd.remotes.manifest import Descriptor
from pycontainerd.remotes.resolver import Resolver
from tests.support.fake_registry import FakeRegistry, FakeRegistryState

BLOB = random.Random(7).randbytes(300_000)


def _blob_state(**options) -> tuple[FakeRegistryState, Descriptor]:
    state = FakeRegistryState(**options)
    digest = state.add_blob(BLOB)
    return state, Descriptor(mediatypes.OCI_LAYER, digest, len(BLOB))


def test_broken_transfer_resumes_with_range() -> None:
    state, desc = _blob_state()
    state.break_blob_after[desc.digest] = [100_000, 50_000]
    with FakeRegistry(state) as fake, Resolver(plain_http=True) as resolver:
        fetcher = resolver.fetcher(f"{fake.host}/repo/blob:latest")
        with VerifyingReader(fetcher.fetch(desc), desc) as reader:
            assert reader.read() == BLOB
    ranges = [r.headers.get("Range") for r in state.requests if "/blobs/" in r.path]
    assert ranges == [None, "bytes=100000-", "bytes=150000-"]


def test_resume_gives_up_after_the_allowed_attempts() -> None:
    state, desc = _blob_state()
    state.break_blob_after[desc.digest] = [10_000, 10_000, 10_000]
    with FakeRegistry(state) as fake, Resolver(plain_http=True) as resolver:
        fetcher = resolver.fetcher(f"{fake.host}/repo/blob:latest")
        reader = fetcher.fetch(desc, resume_attempts=1)
        with reader, pytest.raises(Unavailable, match="could not be resumed"):
            reader.read()


def test_offset_against_server_ignoring_range() -> None:
    state, desc = _blob_state(ignore_range=True)
    with FakeRegistry(state) as fake, Resolver(plain_http=True) as resolver:
        fetcher = resolver.fetcher(f"{fake.host}/repo/blob:latest")
        with fetcher.fetch(desc, offset=123_456) as reader:
            assert reader.read() == BLOB[123_456:]


def test_resolve_falls_back_to_get_without_digest_header() -> None:
    state = FakeRegistryState(send_digest_on_head=False)
    manifest = (
        b'{"schemaVersion":2,"mediaType":"%s","manifests":[]}' % mediatypes.OCI_INDEX.encode()
    )
    digest = state.add_manifest(mediatypes.OCI_INDEX, manifest, tag="v1")
    with FakeRegistry(state) as fake, Resolver(plain_http=True) as resolver:
        name, desc = resolver.resolve(f"{fake.host}/repo/index:v1")
        assert (desc.media_type, desc.digest, desc.size) == (
            mediatypes.OCI_INDEX,
            digest,
            len(manifest),
        )
        assert read_all(resolver.fetcher(name), desc) == manifest
    assert [r.method for r in state.requests] == ["HEAD", "GET", "GET"]
