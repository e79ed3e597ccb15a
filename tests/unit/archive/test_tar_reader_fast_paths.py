"""The tar reader's shortcuts give exactly what the plain computations give."""

from __future__ import annotations

import io
import random
import tarfile

import pytest

from pycontainerd.archive.tar_reader import MalformedArchive, TarReader, _byte_sum, _number


@pytest.mark.parametrize("fill", [0x00, 0x7F, 0x80, 0xFF])
def test_the_byte_sum_of_uniform_blocks(fill: int) -> None:
    block = bytes([fill]) * 512
    assert _byte_sum(block) == sum(block)


def test_the_byte_sum_of_random_blocks() -> None:
    rng = random.Random(7)
    for _ in range(200):
        block = rng.randbytes(512)
        assert _byte_sum(block) == sum(block)


def test_repeated_numbers_parse_the_same_and_bad_ones_still_fail() -> None:
    for _ in range(3):
        assert _number(b"0000644\0", "mode") == 0o644
        assert _number(b"\x80\0\0\0\0\0\0\0\0\0\x01\0", "size") == 256
    for _ in range(2):
        with pytest.raises(MalformedArchive, match="mode field"):
            _number(b"12x4567\0", "mode")


def test_members_with_shared_and_distinct_fields_read_back() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for index in range(50):
            info = tarfile.TarInfo(f"dir/file-{index}")
            info.size = index
            info.mode = 0o600 if index % 2 else 0o755
            info.uid = index % 3
            info.mtime = 1_700_000_000 + index % 5
            tar.addfile(info, io.BytesIO(b"z" * index))
    buffer.seek(0)
    reader = TarReader(io.BufferedReader(buffer))  # type: ignore[arg-type]
    headers = list(reader)
    assert [h.size for h in headers] == list(range(50))
    assert [h.mode for h in headers] == [0o600 if i % 2 else 0o755 for i in range(50)]
    assert [h.uid for h in headers] == [i % 3 for i in range(50)]
    assert [h.mtime_ns // 1_000_000_000 - 1_700_000_000 for h in headers] == [
        i % 5 for i in range(50)
    ]
