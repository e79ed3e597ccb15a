"""Compression detection, media types and streaming decompression."""

from __future__ import annotations

import io
import os

import pytest
from archive_testlib import compress

from pycontainerd import errdefs
from pycontainerd.archive import (
    Compression,
    compression_for_media_type,
    decompress_stream,
    detect_compression,
    media_type_for,
)


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        ("application/vnd.oci.image.layer.v1.tar", Compression.NONE),
        ("application/vnd.oci.image.layer.v1.tar+gzip", Compression.GZIP),
        ("application/vnd.oci.image.layer.v1.tar+zstd", Compression.ZSTD),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar", Compression.NONE),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression.GZIP),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression.ZSTD),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", Compression.GZIP),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression.GZIP),
        ("application/vnd.docker.image.rootfs.diff.tar", None),  # detect from the bytes
    ],
)
def test_media_types(media_type: str, expected: Compression | None) -> None:
    assert compression_for_media_type(media_type) is expected


@pytest.mark.parametrize(
    "media_type",
    [
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
        "application/vnd.oci.image.layer.v1.tar+bzip2",
        "",
    ],
)
def test_unknown_media_types_are_not_implemented(media_type: str) -> None:
    with pytest.raises(errdefs.NotImplemented_, match="media type"):
        compression_for_media_type(media_type)


def test_media_type_for_round_trips() -> None:
    for compression in Compression:
        assert compression_for_media_type(media_type_for(compression)) is compression


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_detect_and_decompress(compression: str) -> None:
    data = os.urandom(100_000) + bytes(300_000)
    blob = compress(data, compression)
    assert detect_compression(blob[:4]) is Compression(compression)
    assert decompress_stream(io.BytesIO(blob)).read() == data
    assert decompress_stream(io.BytesIO(blob), compression).read() == data


def test_short_and_empty_plain_streams() -> None:
    assert decompress_stream(io.BytesIO(b"ab")).read() == b"ab"
    assert decompress_stream(io.BytesIO(b"")).read() == b""


def test_empty_gzip_stream_is_invalid() -> None:
    with pytest.raises(errdefs.InvalidArgument, match="truncated"):
        decompress_stream(io.BytesIO(b""), "gzip").read()


def test_unknown_compression_name() -> None:
    with pytest.raises(errdefs.InvalidArgument, match="compression"):
        Compression.parse("lz4")
