"""Our HPACK decoder: the RFC's examples, agreement with the ``hpack`` encoder, bad blocks."""

from __future__ import annotations

import random

import hpack
import pytest

from pycontainerd.h2grpc.frames import ConnectionError_, ErrorCode
from pycontainerd.h2grpc.hpack_decoder import HeaderBlockDecoder

LIMIT = 1 << 20


def test_rfc_7541_request_examples_without_and_with_huffman() -> None:
    # RFC 7541 C.3.1-C.3.2 (literals) and C.4.1 (Huffman): the first two requests.
    plain = HeaderBlockDecoder(LIMIT)
    assert plain.decode(bytes.fromhex("828684410f7777772e6578616d706c652e636f6d")) == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
    ]
    # The second request names :authority by its new dynamic index (62).
    assert plain.decode(bytes.fromhex("828684be58086e6f2d6361636865")) == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
        (b"cache-control", b"no-cache"),
    ]
    huffman = HeaderBlockDecoder(LIMIT)
    assert huffman.decode(bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff"))[-1] == (
        b":authority",
        b"www.example.com",
    )


def _random_headers(
    rng: random.Random,
) -> list[tuple[bytes, bytes] | hpack.NeverIndexedHeaderTuple]:
    names = [b":path", b"content-type", b"user-agent", b"containerd-namespace", b"x-long"]
    headers: list[tuple[bytes, bytes] | hpack.NeverIndexedHeaderTuple] = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
    ]
    for _ in range(rng.randrange(1, 12)):
        name = rng.choice(names)
        size = rng.choice([0, 3, 40, 300, 3000])
        value = bytes(rng.randrange(32, 127) for _ in range(size))
        if rng.random() < 0.2:
            headers.append(hpack.NeverIndexedHeaderTuple(name, value))
        else:
            headers.append((name, value))
    return headers


@pytest.mark.parametrize("seed", range(8))
def test_agrees_with_the_hpack_encoder_over_many_blocks(seed: int) -> None:
    """Repeats, evictions, Huffman or not, never-indexed fields and table size changes."""
    rng = random.Random(seed)
    encoder = hpack.Encoder()
    ours = HeaderBlockDecoder(LIMIT)
    for block_number in range(200):
        if block_number % 50 == 25:
            encoder.header_table_size = rng.choice([0, 256, 1024, 4096])
        headers = _random_headers(rng)
        block = encoder.encode(headers, huffman=rng.random() < 0.5)
        assert ours.decode(block) == [(bytes(n), bytes(v)) for n, v in headers]


def test_a_long_index_and_length_use_continuation_bytes() -> None:
    encoder = hpack.Encoder()
    ours = HeaderBlockDecoder(LIMIT)
    names = [f"x-{i}".encode() for i in range(100)]  # pushes indexes past 127
    ours.decode(encoder.encode([(name, b"v") for name in names]))
    value = b"z" * 5000
    block = encoder.encode([(names[0], b"v"), (b"big", value)], huffman=False)
    assert ours.decode(block) == [(names[0], b"v"), (b"big", value)]


@pytest.mark.parametrize(
    ("block", "why"),
    [
        (b"\x80", "index 0"),
        (b"\xff\x00", "an index past both tables"),
        (b"\xbe", "a dynamic index into an empty table"),
        (b"\x41\x05ab", "a string longer than the block"),
        (b"\x41", "a literal cut off before its value"),
        (b"\xff\xff\xff\xff\xff\xff\xff\x01", "an integer of too many bytes"),
        (b"\x3f\xe2\x1f", "a table size update to 4097, over the 4096 allowed"),
        (b"\x82\x20", "a table size update after a field"),
        (b"\x41\x81\xff\x00", "bad Huffman (the EOS code)"),
    ],
)
def test_a_malformed_block_is_a_compression_error(block: bytes, why: str) -> None:
    with pytest.raises(ConnectionError_) as raised:
        HeaderBlockDecoder(LIMIT).decode(block)
    assert raised.value.code == ErrorCode.COMPRESSION_ERROR, why


def test_a_header_list_over_the_limit_is_refused() -> None:
    block = hpack.Encoder().encode([(b"x-big", b"v" * 200)], huffman=False)
    with pytest.raises(ConnectionError_, match="header list over 100 bytes"):
        HeaderBlockDecoder(100).decode(block)


def test_the_table_keeps_within_its_size_and_an_oversized_entry_empties_it() -> None:
    encoder = hpack.Encoder()
    ours = HeaderBlockDecoder(LIMIT)
    ours.decode(encoder.encode([(b"a", b"1" * 1000), (b"b", b"2" * 1000), (b"c", b"3" * 1000)]))
    ours.decode(encoder.encode([(b"d", b"4" * 2000)]))  # evicts the oldest entries
    assert ours.decode(encoder.encode([(b"d", b"4" * 2000), (b"c", b"3" * 1000)])) == [
        (b"d", b"4" * 2000),
        (b"c", b"3" * 1000),
    ]
    # An entry larger than the whole table (literal with indexing) leaves it empty.
    ours.decode(b"\x40\x01e\x7f\x82\x20" + b"e" * 4225)
    with pytest.raises(ConnectionError_):
        ours.decode(b"\xbe")  # index 62: nothing is left


def test_a_block_that_adds_to_the_table_is_decoded_again_when_repeated() -> None:
    """Only blocks that leave the table alone are remembered: a repeat of one that adds must add."""
    ours = HeaderBlockDecoder(LIMIT)
    adding = b"\x40\x01a\x011"  # literal with incremental indexing: a: 1
    ours.decode(adding)
    ours.decode(adding)
    assert ours.decode(b"\xbe\xbf") == [(b"a", b"1"), (b"a", b"1")]  # indexes 62 and 63
    indexed = b"\xbe"
    assert ours.decode(indexed) == [(b"a", b"1")]
    ours.decode(b"\x40\x01b\x012")  # the table changes: index 62 is now b: 2
    assert ours.decode(indexed) == [(b"b", b"2")]


def test_huffman_strings_of_every_byte_value() -> None:
    encoder = hpack.Encoder()
    ours = HeaderBlockDecoder(LIMIT)
    value = bytes(range(256)) * 3
    assert ours.decode(encoder.encode([(b"x-all", value)], huffman=True)) == [(b"x-all", value)]


@pytest.mark.parametrize(
    ("encoded", "why"),
    [
        (b"\x00", "'0' (00000) then three zero bits: padding must be ones"),
        (b"\x1f\xff", "'a' (00011) then eleven ones: padding is at most seven bits"),
    ],
)
def test_huffman_padding_must_be_short_and_all_ones(encoded: bytes, why: str) -> None:
    block = b"\x40\x01a" + bytes([0x80 | len(encoded)]) + encoded
    with pytest.raises(ConnectionError_, match="Huffman"):
        HeaderBlockDecoder(LIMIT).decode(block)


def test_connections_sending_the_same_blocks_share_their_decoding() -> None:
    """A second connection with the same history gets the first one's fields, and its own table."""
    blocks = []
    encoder = hpack.Encoder()
    for path in (b"/a.A/One", b"/a.A/Two", b"/a.A/One"):
        blocks.append(encoder.encode([(b":path", path), (b"x-ns", b"default")]))
    first, second = HeaderBlockDecoder(LIMIT), HeaderBlockDecoder(LIMIT)
    decoded = [first.decode(block) for block in blocks]
    again = [second.decode(block) for block in blocks]
    assert all(a is b for a, b in zip(decoded, again, strict=True))
    # Each table followed its own blocks: a reference to the newest entry reads the same.
    assert first.decode(b"\xbe") == second.decode(b"\xbe") == [(b":path", b"/a.A/Two")]


def test_a_connection_that_goes_another_way_decodes_against_its_own_table() -> None:
    same = hpack.Encoder().encode([(b"x-k", b"one")])
    first, second = HeaderBlockDecoder(LIMIT), HeaderBlockDecoder(LIMIT)
    first.decode(same)
    second.decode(same)
    first.decode(b"\x40\x03x-k\x03two")  # only the first table gets x-k: two
    assert first.decode(b"\xbe") == [(b"x-k", b"two")]
    assert second.decode(b"\xbe") == [(b"x-k", b"one")]
