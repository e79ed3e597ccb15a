"""Digest parsing, validation and hashing."""

from __future__ import annotations

import hashlib
import io

import pytest

from pycontainerd.digest import (
    Digest,
    Hasher,
    digest_of_bytes,
    digest_of_stream,
    parse_digest,
    parse_writable_digest,
)
from pycontainerd.errdefs import InvalidArgument

HELLO_SHA256 = "sha256:" + hashlib.sha256(b"hello").hexdigest()


def test_parse_valid_sha256() -> None:
    algorithm, hex_value = parse_digest(HELLO_SHA256)
    assert algorithm == "sha256"
    assert hex_value == hashlib.sha256(b"hello").hexdigest()


@pytest.mark.parametrize("algorithm", ["sha384", "sha512"])
def test_other_oci_algorithms_parse(algorithm: str) -> None:
    value = f"{algorithm}:{hashlib.new(algorithm, b'x').hexdigest()}"
    digest = Digest(value)
    assert digest.algorithm == algorithm
    assert digest == value


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "g" * 64,
        "SHA256:" + "a" * 64,
        "sha256:" + "a" * 32 + "/" + "a" * 31,
        "../../etc/passwd",
        "sha512:" + "a" * 64,
    ],
)
def test_malformed_digests_name_value_and_form(bad: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Digest(bad)
    message = str(caught.value)
    assert repr(bad) in message
    assert "lowercase hex" in message


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="unsupported digest algorithm 'md5'"):
        parse_digest("md5:" + "a" * 32)


def test_writable_digest_must_be_sha256() -> None:
    assert parse_writable_digest(HELLO_SHA256) == HELLO_SHA256
    with pytest.raises(InvalidArgument, match="only writes sha256"):
        parse_writable_digest("sha512:" + hashlib.sha512(b"x").hexdigest())


def test_digest_is_a_plain_string() -> None:
    digest = Digest(HELLO_SHA256)
    assert isinstance(digest, str)
    assert {digest: 1}[HELLO_SHA256] == 1
    assert Digest(digest) is digest
    assert digest.hex == HELLO_SHA256.split(":")[1]


def test_streaming_hasher_matches_one_shot() -> None:
    data = bytes(range(256)) * 10_000
    hasher = Hasher()
    for start in range(0, len(data), 77_777):
        hasher.update(data[start : start + 77_777])
    assert hasher.digest() == digest_of_bytes(data) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert digest_of_stream(io.BytesIO(data)) == hasher.digest()
    hasher.reset()
    assert hasher.digest() == digest_of_bytes(b"")


def test_hasher_refuses_unknown_algorithm() -> None:
    with pytest.raises(InvalidArgument, match="md5"):
        Hasher("md5")
