"""HPACK (RFC 7541) decoding of request header blocks, one decoder per connection.

The ``hpack`` package decodes correctly but spends ~25 µs a field building
typed tuples, logging and re-measuring its table: with gRPC clients that open a
connection per command (``ctr``), decoding the ~8 fields of each request cost
more than the handler. This decoder keeps the same contract (the dynamic table
follows every block; a malformed block is a COMPRESSION_ERROR for the whole
connection) and returns plain ``(name, value)`` byte pairs.

Decoded blocks are remembered across connections. A block's fields depend only
on the table it is decoded against, and the table only on the blocks before it
on its connection; so each table state gets an id (:class:`_Memo`), and a block
met again on a table with the same id decodes to the same fields and changes the
table the same way. A client that opens a connection per command sends the same
blocks in the same order each time: after the first, its blocks are lookups up
to the first header that differs (a fresh lease id, say).

The static table and the Huffman code come from ``hpack`` (facts of the RFC, not
re-typed here); Huffman strings are decoded a byte at a time through transitions
remembered as they are met.
"""

from __future__ import annotations

import itertools
from collections import deque

from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

from pycontainerd.h2grpc.frames import ConnectionError_, ErrorCode

Field = tuple[bytes, bytes]

#: Index 1..61; index 0 is never valid.
_STATIC: tuple[Field, ...] = tuple(HeaderTable.STATIC_TABLE)
_STATIC_COUNT = len(_STATIC)
#: RFC 7541 4.1: an entry's size is its name and value lengths plus 32.
ENTRY_OVERHEAD = 32
DEFAULT_TABLE_SIZE = 4096
#: Longer integers than this many continuation bytes cannot be a sane length or index.
_MAX_INTEGER_BYTES = 5
#: Decoded blocks remembered for all connections (under ~1 MiB); the memo starts again when full.
_REMEMBERED_BLOCKS = 1024
#: Longer blocks are decoded each time (a large metadata value is not worth keeping).
_REMEMBERED_BLOCK_SIZE = 512


class HeaderBlockDecoder:
    """Decodes every header block a connection receives, in order.

    ``max_table_size`` is the SETTINGS_HEADER_TABLE_SIZE this side advertises
    (the RFC's default unless it says otherwise): the encoder may shrink its
    table below it, never grow it past. ``max_header_list_size`` bounds a
    block's decoded size (names, values, 32 per field).
    """

    def __init__(self, max_header_list_size: int, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self._max_list = max_header_list_size
        self._allowed_table_size = max_table_size
        self._table_size = max_table_size
        self._dynamic: deque[Field] = deque()  # newest first: index 62 is _dynamic[0]
        self._used = 0
        #: The id of this table's state (see _Memo).
        self._state: object = _MEMO.initial_state(max_header_list_size, max_table_size)
        #: What decoding the current block did to the table, to replay on a memo hit.
        self._changes: list[_Change] | None = None

    def decode(self, block: bytes) -> list[Field]:
        """The block's fields, in order. The list may be shared: do not change it."""
        state = self._state
        remembered = _MEMO.get(state, block)
        if remembered is not None:
            fields, replayed, self._state = remembered
            for change in replayed:
                self._replay(change)
            return fields
        changes: list[_Change] = []
        self._changes = changes
        try:
            fields = self._decode(block)
        except IndexError:
            raise _error("a header block ends inside a field") from None
        finally:
            self._changes = None
        self._state = _MEMO.put(state, block, fields, changes)
        return fields

    def _decode(self, block: bytes) -> list[Field]:
        fields: list[Field] = []
        listed = 0
        end = len(block)
        i = 0
        while i < end:
            first = block[i]
            if first & 0x80:  # indexed field
                index = first & 0x7F
                i += 1
                if index == 0x7F:
                    index, i = _integer(block, i, index)
                field = self._entry(index)
            elif first & 0x40:  # literal, added to the table
                field, i = self._literal(block, i, 0x3F)
                self._add(field)
            elif first & 0x20:  # dynamic table size update
                if fields:
                    raise _error("a table size update after the first field of a block")
                size = first & 0x1F
                i += 1
                if size == 0x1F:
                    size, i = _integer(block, i, size)
                if size > self._allowed_table_size:
                    raise _error(
                        f"table size {size} is over the {self._allowed_table_size} allowed"
                    )
                self._resize(size)
                continue
            else:  # literal not indexed (0000) or never indexed (0001)
                field, i = self._literal(block, i, 0x0F)
            listed += len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
            if listed > self._max_list:
                raise _error(f"a header list over {self._max_list} bytes")
            fields.append(field)
        return fields

    def _entry(self, index: int) -> Field:
        if 0 < index <= _STATIC_COUNT:
            return _STATIC[index - 1]
        dynamic = index - _STATIC_COUNT - 1
        if 0 <= dynamic < len(self._dynamic):
            return self._dynamic[dynamic]
        raise _error(f"header index {index} is not in the table")

    def _literal(self, block: bytes, i: int, prefix: int) -> tuple[Field, int]:
        index = block[i] & prefix
        i += 1
        if index == prefix:
            index, i = _integer(block, i, index)
        if index:
            name = self._entry(index)[0]
        else:
            name, i = _string(block, i)
        value, i = _string(block, i)
        return (name, value), i

    def _add(self, field: Field) -> None:
        if self._changes is not None:
            self._changes.append(field)
        size = len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
        if size > self._table_size:  # RFC 7541 4.4: an entry too large empties the table
            self._dynamic.clear()
            self._used = 0
            return
        self._dynamic.appendleft(field)
        self._used += size
        self._evict()

    def _resize(self, size: int) -> None:
        if self._changes is not None:
            self._changes.append(size)
        self._table_size = size
        self._evict()

    def _replay(self, change: _Change) -> None:
        if isinstance(change, int):
            self._resize(change)
        else:
            self._add(change)

    def _evict(self) -> None:
        while self._used > self._table_size:
            name, value = self._dynamic.pop()
            self._used -= len(name) + len(value) + ENTRY_OVERHEAD


#: A change a block made to its table: an entry added, or a new table size.
_Change = Field | int


class _Memo:
    """Blocks decoded on some connection, by (table state id, block bytes).

    A state id stands for one table: the table a decoder starts with, or the
    one a remembered block left behind (a fresh id, unless the block changed
    nothing). Two connections whose tables share an id hold the same entries.
    """

    def __init__(self) -> None:
        self._blocks: dict[tuple[object, bytes], tuple[list[Field], list[_Change], object]] = {}
        self._next_state = itertools.count()

    def initial_state(self, max_header_list_size: int, max_table_size: int) -> object:
        return ("start", max_header_list_size, max_table_size)

    def get(self, state: object, block: bytes) -> tuple[list[Field], list[_Change], object] | None:
        return self._blocks.get((state, block))

    def put(
        self, state: object, block: bytes, fields: list[Field], changes: list[_Change]
    ) -> object:
        """Remember a block just decoded on ``state``; returns the id of the table it left."""
        after = next(self._next_state) if changes else state
        if len(block) <= _REMEMBERED_BLOCK_SIZE:
            if len(self._blocks) >= _REMEMBERED_BLOCKS:
                self._blocks.clear()
            self._blocks[(state, block)] = (fields, changes, after)
        return after


_MEMO = _Memo()


def _integer(block: bytes, i: int, value: int) -> tuple[int, int]:
    """The rest of an integer whose prefix was all ones (RFC 7541 5.1), and where it ends."""
    shift = 0
    for _ in range(_MAX_INTEGER_BYTES):
        byte = block[i]
        i += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
    raise _error("an HPACK integer longer than any header could need")


def _string(block: bytes, i: int) -> tuple[bytes, int]:
    first = block[i]
    length = first & 0x7F
    i += 1
    if length == 0x7F:
        length, i = _integer(block, i, length)
    end = i + length
    if end > len(block):
        raise _error("a header string runs past its block")
    raw = block[i:end]
    return (_huffman(raw) if first & 0x80 else raw), end


# -- Huffman (RFC 7541 5.2, appendix B) ----------------------------------------------------


class _HuffmanTree:
    """The code's tree, and byte transitions through it remembered as they are met.

    A state is an internal node (0 is the root); a transition takes a state and
    one input byte to the next state and the symbols completed on the way.
    """

    def __init__(self) -> None:
        # children[node] = [on 0, on 1]: a node number, or -(symbol + 1) for a leaf.
        self.children: list[list[int]] = [[0, 0]]
        #: Whether the bits from the root to a node could be EOS padding (at most 7 ones).
        self.padding: list[bool] = [True]
        for symbol, (code, length) in enumerate(
            zip(REQUEST_CODES, REQUEST_CODES_LENGTH, strict=True)
        ):
            node = 0
            for shift in range(length - 1, 0, -1):
                bit = code >> shift & 1
                following = self.children[node][bit]
                if following == 0:
                    following = len(self.children)
                    self.children.append([0, 0])
                    depth = length - shift
                    self.padding.append(self.padding[node] and bit == 1 and depth <= 7)
                    self.children[node][bit] = following
                node = following
            self.children[node][code & 1] = -(symbol + 1)
        #: Keyed by state << 8 | byte; only those met (a few thousand, not 65536).
        self.transitions: dict[int, tuple[int, bytes]] = {}

    def step(self, state: int, byte: int) -> tuple[int, bytes]:
        node = state
        out = bytearray()
        for shift in range(7, -1, -1):
            following = self.children[node][byte >> shift & 1]
            if following < 0:
                if following == -257:
                    raise _error("a Huffman string holds the EOS symbol")
                out.append(-following - 1)
                node = 0
            else:
                node = following
        transition = (node, bytes(out))
        self.transitions[state << 8 | byte] = transition
        return transition


_tree: _HuffmanTree | None = None


def _huffman(raw: bytes) -> bytes:
    global _tree
    tree = _tree or (_tree := _HuffmanTree())
    transitions = tree.transitions
    state = 0
    parts: list[bytes] = []
    for byte in raw:
        state, out = transitions.get(state << 8 | byte) or tree.step(state, byte)
        if out:
            parts.append(out)
    if not tree.padding[state]:
        raise _error("a Huffman string ends in padding that is not EOS's first bits")
    return b"".join(parts)


def _error(message: str) -> ConnectionError_:
    return ConnectionError_(ErrorCode.COMPRESSION_ERROR, f"bad header block: {message}")
