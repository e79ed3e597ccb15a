"""Byte-level checks of the ttrpc framing and envelopes against containerd/ttrpc 1.1."""

from __future__ import annotations

import asyncio

import pytest

from pycontainerd import errdefs
from pycontainerd.errdefs import Code
from pycontainerd.ttrpc import framing, protocol, status
from pycontainerd.ttrpc.address import socket_path


def test_header_is_length_stream_type_flags_big_endian():
    frame = framing.encode_frame(0x01020305, framing.MessageType.REQUEST, b"abc")
    assert frame == b"\x00\x00\x00\x03" + b"\x01\x02\x03\x05" + b"\x01" + b"\x00" + b"abc"
    assert framing.HEADER_LENGTH == 10
    assert framing.MESSAGE_LENGTH_MAX == 4 * 1024 * 1024


def _reader_with(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=1 << 16)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_read_frame_parses_header_and_payload(run):
    async def scenario():
        data = framing.encode_frame(7, framing.MessageType.RESPONSE, b"hello")
        frame = await framing.read_frame(_reader_with(data + data))
        assert (frame.stream_id, frame.type, frame.flags, frame.payload) == (7, 2, 0, b"hello")

    run(scenario())


def test_oversized_frame_is_skipped_and_next_frame_still_readable(run):
    async def scenario():
        length = framing.MESSAGE_LENGTH_MAX + 1
        oversized = b"\x00\x40\x00\x01" + b"\x00\x00\x00\x03" + b"\x01\x00" + b"z" * length
        following = framing.encode_frame(5, framing.MessageType.REQUEST, b"ok")
        reader = _reader_with(oversized + following)
        first = await framing.read_frame(reader)
        assert first.oversized and first.stream_id == 3 and first.length == length
        second = await framing.read_frame(reader)
        assert second.payload == b"ok" and second.stream_id == 5

    run(scenario())


def test_truncated_frame_raises_incomplete_read(run):
    async def scenario():
        data = framing.encode_frame(1, 1, b"abcdef")[:-2]
        with pytest.raises(asyncio.IncompleteReadError):
            await framing.read_frame(_reader_with(data))

    run(scenario())


def test_request_envelope_matches_go_struct_tags():
    # service=1 (bytes), method=2 (bytes), payload=3 (bytes), timeout_nano=4 (varint),
    # metadata=5 (repeated KeyValue{key=1, value=2}); keys lower-cased like ttrpc.MD.
    data = protocol.encode_request("svc", "M", b"p", 5, {"Key": ["a", "b"]})
    assert data == (
        b"\x0a\x03svc" + b"\x12\x01M" + b"\x1a\x01p" + b"\x20\x05"
        b"\x2a\x08\x0a\x03key\x12\x01a" + b"\x2a\x08\x0a\x03key\x12\x01b"
    )
    decoded = protocol.decode_request(data)
    assert decoded.service == "svc" and decoded.method == "M" and decoded.payload == b"p"
    assert decoded.timeout_nano == 5 and decoded.metadata == {"key": ["a", "b"]}


def test_response_envelope_always_carries_status_like_go():
    # Go marshals status.New(codes.OK, "").Proto(): an empty but present field 1.
    assert protocol.encode_response(Code.OK, "", b"") == b"\x0a\x00"
    assert protocol.encode_response(Code.OK, "", b"xy") == b"\x0a\x00\x12\x02xy"
    assert protocol.encode_response(Code.NOT_FOUND, "nf") == b"\x0a\x06\x08\x05\x12\x02nf"
    decoded = protocol.decode_response(b"\x0a\x06\x08\x05\x12\x02nf")
    assert (decoded.code, decoded.message, decoded.payload) == (5, "nf", b"")
    # A Go response with no status at all means OK.
    assert protocol.decode_response(b"\x12\x01z").code == Code.OK


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errdefs.NotFound("x"), Code.NOT_FOUND),
        (errdefs.FailedPrecondition("x"), Code.FAILED_PRECONDITION),
        (FileNotFoundError("x"), Code.NOT_FOUND),
        (FileExistsError("x"), Code.ALREADY_EXISTS),
        (PermissionError("x"), Code.PERMISSION_DENIED),
        (TimeoutError(), Code.DEADLINE_EXCEEDED),
        (ValueError("x"), Code.UNKNOWN),
    ],
)
def test_handler_exceptions_map_to_status_codes(exc, code):
    assert status.status_of(exc)[0] == code


def test_received_status_becomes_errdefs_error_keeping_its_code():
    err = status.error_from_status(Code.NOT_FOUND, "gone")
    assert isinstance(err, errdefs.NotFound) and str(err) == "gone"
    internal = status.error_from_status(Code.INTERNAL, "boom")
    assert isinstance(internal, errdefs.ContainerdError) and internal.code == Code.INTERNAL
    assert status.error_from_status(999, "odd").code == Code.UNKNOWN
    assert isinstance(status.closed_error(), errdefs.Unavailable)


def test_socket_addresses():
    assert socket_path("unix:///run/x.sock") == "/run/x.sock"
    assert socket_path("/run/x.sock") == "/run/x.sock"
    assert socket_path("@abstract") == "\0abstract"
    with pytest.raises(errdefs.InvalidArgument):
        socket_path("unix://")
    with pytest.raises(errdefs.InvalidArgument, match="too long"):
        socket_path("/" + "a" * 200)
