"""The content Write stream on the client side: hand-encoded WRITE frames and pipelining."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from pycontainerd import errdefs
from pycontainerd.api.services.content.v1 import content_pb2 as api
from pycontainerd.client.content import (
    ContentWriter,
    FrameBuffer,
    WriteFrame,
    _serialize_write_request,
)

OFFSETS = [0, 1, 127, 128, 300, 1 << 32, (1 << 62) + 5]
SIZES = [0, 1, 127, 128, 16_384, 70_000]


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("size", SIZES)
def test_a_frame_is_what_protobuf_would_write(offset: int, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = api.WriteContentRequest(action=api.WRITE, offset=offset, data=data)
    frame = WriteFrame.encode(offset, memoryview(data))
    assert frame.wire == expected.SerializeToString()
    assert (frame.offset, frame.size) == (offset, size)
    assert api.WriteContentRequest.FromString(frame.wire) == expected


@pytest.mark.parametrize("offset", OFFSETS)
def test_a_frame_buffer_makes_the_same_frame(offset: int) -> None:
    buffer = FrameBuffer(1000)
    buffer.space[:600] = b"x" * 600
    frame = buffer.frame(offset, 600)
    assert frame == WriteFrame.encode(offset, b"x" * 600)
    buffer.space[:3] = b"new"  # the frame owns its bytes: reusing the buffer is safe
    assert frame.wire.endswith(b"x" * 600)


def test_the_serializer_passes_frames_through_and_encodes_messages() -> None:
    frame = WriteFrame.encode(5, b"abc")
    assert _serialize_write_request(frame.wire) is frame.wire
    stat = api.WriteContentRequest(action=api.STAT, ref="r")
    assert _serialize_write_request(stat) == stat.SerializeToString()


# -- pipelining, against a fake stream ----------------------------------------------------


class _FakeConnection:
    address = "fake"

    def error(self, exc: grpc.RpcError) -> Exception:
        return errdefs.Unavailable(str(exc))


class _FakeWriteCall:
    """Answers each WRITE with the offset the daemon would hold, in order."""

    def __init__(self, *, fail_at_write: int | None = None, short_by: int = 0) -> None:
        self.log: list[str] = []
        self._replies: asyncio.Queue[Any] = asyncio.Queue()
        self._held = 0
        self._writes = 0
        self._fail_at_write = fail_at_write
        self._short_by = short_by
        self._failed = False
        self.cancelled = False

    async def write(self, request: Any) -> None:
        if self._failed:
            raise asyncio.InvalidStateError("the call is finished")
        if isinstance(request, bytes):
            message = api.WriteContentRequest.FromString(request)
        else:
            message = request
        self.log.append(f"send {api.WriteAction.Name(message.action)} {len(message.data)}")
        if message.action == api.WRITE:
            self._writes += 1
            if self._writes == self._fail_at_write:
                self._failed = True
                self._replies.put_nowait(errdefs.OutOfRange("bad offset"))
                return
            self._held += len(message.data) - self._short_by
        reply = api.WriteContentResponse(action=message.action, offset=self._held)
        if message.action == api.COMMIT:
            reply.digest = "sha256:" + "0" * 64
        self._replies.put_nowait(reply)

    async def read(self) -> Any:
        reply = await self._replies.get()
        self.log.append("read")
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def done_writing(self) -> None:
        self.log.append("done")

    def cancel(self) -> None:
        self.cancelled = True


def _writer(call: _FakeWriteCall, window: int = 3) -> ContentWriter:
    return ContentWriter(_FakeConnection(), call, "ref", 0, "", window=window)  # type: ignore[arg-type]


def test_writes_are_sent_ahead_of_the_replies() -> None:
    async def scenario() -> list[str]:
        call = _FakeWriteCall()
        writer = _writer(call, window=3)
        await writer.stat()
        for number in range(5):
            await writer.send(WriteFrame.encode(writer.offset, b"y" * (number + 1)))
        assert writer.offset == 15
        digest = await writer.commit()
        assert digest.startswith("sha256:")
        assert writer.acknowledged == 15
        return call.log

    log = asyncio.run(scenario())
    assert log[:2] == ["send STAT 0", "read"]
    # Two writes travel unanswered; the third waits for the first reply, and so on.
    assert log[2:9] == [
        "send WRITE 1",
        "send WRITE 2",
        "send WRITE 3",
        "read",
        "send WRITE 4",
        "read",
        "send WRITE 5",
    ]
    assert log[9:] == ["read", "read", "read", "send COMMIT 0", "read"]


def test_a_frame_for_another_offset_is_refused() -> None:
    async def scenario() -> None:
        writer = _writer(_FakeWriteCall())
        await writer.stat()
        with pytest.raises(errdefs.InvalidArgument, match="offset 7"):
            await writer.send(WriteFrame.encode(7, b"z"))

    asyncio.run(scenario())


def test_a_reply_that_does_not_match_what_was_sent_is_data_loss() -> None:
    async def scenario() -> None:
        writer = _writer(_FakeWriteCall(short_by=1), window=1)
        await writer.stat()
        with pytest.raises(errdefs.DataLoss, match="should have brought it to 4"):
            await writer.send(WriteFrame.encode(0, b"four"))

    asyncio.run(scenario())


def test_an_error_for_an_earlier_write_surfaces_at_a_later_one() -> None:
    async def scenario() -> None:
        writer = _writer(_FakeWriteCall(fail_at_write=1), window=4)
        await writer.stat()
        await writer.send(WriteFrame.encode(0, b"a"))  # the daemon refuses it, unseen yet
        with pytest.raises(errdefs.OutOfRange, match="bad offset"):
            await writer.send(WriteFrame.encode(1, b"b"))

    asyncio.run(scenario())


def test_close_waits_for_the_writes_sent() -> None:
    async def scenario() -> list[str]:
        call = _FakeWriteCall()
        writer = _writer(call, window=8)
        await writer.stat()
        await writer.write(b"partial")
        await writer.close()
        assert call.cancelled and writer.acknowledged == len(b"partial")
        return call.log

    assert asyncio.run(scenario())[-3:] == ["send WRITE 7", "read", "done"]
