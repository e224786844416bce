"""A whole-file check of a MaxMind DB (.mmdb), done once when the database is opened.

``maxminddb`` opens a file after reading only its metadata: a damaged record
(a double of the wrong width, a pointer past the end, bad UTF-8) is found when
a query first lands on it, which for us would be on the query path.  The
server's rule is that a bad input is rejected when it is loaded, so this module
reads every byte that a lookup could ever reach:

* the search tree: every record of every node is either a child node, the
  empty marker, or a pointer inside the data section;
* the data section, front to back, as a sequence of values: each control byte,
  size and payload is well formed for its type (the MaxMind DB spec, v2.0);
* every pointer inside the data: it lands inside the data section, on a well
  formed value that is not itself a pointer (a map key's pointer on a string);
* every record the tree points at is a map (``geoip2`` needs a dict).

It checks structure, not meaning, and it never follows pointers or builds
Python objects, so it costs one pass over the file (about 0.1 s per MB):
decoding every record instead would cost ~80 us per City record in pure
Python, and most records are reached through several networks.
"""

from __future__ import annotations

import sys
from array import array

import numpy as np

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
_SEPARATOR = 16  # zero bytes between the tree and the data section

# Types of the MaxMind DB data section (spec section "Output Data Section").
_POINTER, _STRING, _DOUBLE, _BYTES, _UINT16, _UINT32, _MAP = 1, 2, 3, 4, 5, 6, 7
_INT32, _UINT64, _UINT128, _ARRAY, _BOOLEAN, _FLOAT = 8, 9, 10, 11, 14, 15
# Payload sizes allowed for the fixed-width types.
_MAX_SIZE: dict[int, int] = {_UINT16: 2, _UINT32: 4, _INT32: 4, _UINT64: 8, _UINT128: 16}
_EXACT_SIZE: dict[int, int] = {_DOUBLE: 8, _FLOAT: 4}
_MAX_DEPTH = 512  # the same nesting limit maxminddb's decoder enforces
_EXTENDED = frozenset((_INT32, _UINT64, _UINT128, _ARRAY, _BOOLEAN, _FLOAT))
_SIZE_BIAS = (0, 29, 285, 65821)  # added to a size held in 1, 2 or 3 extra bytes


class CorruptDatabase(Exception):
    """The file is not a well-formed MaxMind DB; the message says where and why."""


def check_mmdb(buf: bytes, node_count: int, record_size: int) -> None:
    """Raise CorruptDatabase unless every lookup in ``buf`` can be decoded.

    ``node_count`` and ``record_size`` come from the metadata that the reader
    has already parsed and checked.
    """
    tree_size = node_count * record_size // 4
    marker = buf.rfind(METADATA_MARKER, max(0, len(buf) - 128 * 1024))
    if marker < 0:
        raise CorruptDatabase("no MaxMind DB metadata marker")
    data_start = tree_size + _SEPARATOR
    if data_start > marker:
        raise CorruptDatabase("the search tree runs into the metadata")
    data = buf[data_start:marker]  # a bytes copy: indexing bytes is the fastest access
    records = tree_records(memoryview(buf)[:tree_size], record_size)
    if len(records) != 2 * node_count:
        raise CorruptDatabase("the search tree is truncated")
    targets = _data_pointers(records, node_count, len(data))
    _Walker(data).check_all(targets)


def tree_records(tree: memoryview, record_size: int) -> array:
    """All records of all nodes, left then right, as one array of unsigned ints.

    Done with slice copies (C speed) rather than a Python loop per node: a
    country-wide City database has millions of nodes.
    """
    out: bytearray
    if record_size == 32:
        out = bytearray(tree)
    elif record_size == 24:
        count = len(tree) // 3
        out = bytearray(4 * count)
        for i in range(3):
            out[i + 1 :: 4] = tree[i::3]
    elif record_size == 28:
        nodes = len(tree) // 7
        middle = bytes(tree[3::7])
        out = bytearray(8 * nodes)
        out[0::8] = middle.translate(_HIGH_NIBBLE)
        out[4::8] = middle.translate(_LOW_NIBBLE)
        for i in range(3):
            out[i + 1 :: 8] = tree[i::7]
            out[i + 5 :: 8] = tree[i + 4 :: 7]
    else:
        raise CorruptDatabase(f"unknown record size {record_size}")
    records = array("I")
    if records.itemsize != 4:  # pragma: no cover - every supported platform has 4-byte "I"
        records = array("L")
    records.frombytes(out)
    del out
    if sys.byteorder == "little":
        records.byteswap()
    return records


_HIGH_NIBBLE = bytes(b >> 4 for b in range(256))
_LOW_NIBBLE = bytes(b & 0x0F for b in range(256))


def _data_pointers(records: array, node_count: int, data_size: int) -> set[int]:
    """The data-section offsets the tree points at; raise if one is out of range.

    The distinct values are found with numpy: a City database's tree holds millions of
    records, and a Python set of them alone was the largest part of the check's memory.
    """
    values = np.unique(np.frombuffer(records, dtype=np.uint32 if records.itemsize == 4 else np.uint64))
    values = values[values > node_count].astype(np.int64)
    if values.size and not (
        values[0] - node_count - _SEPARATOR >= 0 and values[-1] - node_count - _SEPARATOR < data_size
    ):
        bad = values[(values - node_count - _SEPARATOR < 0) | (values - node_count - _SEPARATOR >= data_size)][0]
        raise CorruptDatabase(f"a search tree record points outside the data section ({int(bad)})")
    return set((values - (node_count + _SEPARATOR)).tolist())


class _Walker:
    """Reads values of the data section without decoding them into Python objects."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.end = len(data)
        self.pointers: set[int] = set()  # targets of pointers met inside values
        self.key_pointers: set[int] = set()  # targets of pointers used as map keys

    def check_all(self, records: set[int]) -> None:
        """Walk the data section front to back, then every pointer target."""
        offset = 0
        while offset < self.end:
            if offset in records:
                records.discard(offset)
                self._expect_map(offset)
            offset = self._walk(offset)
        for offset in records:  # a record nested in another value: unusual, legal
            self._expect_map(offset)
            self._walk(offset)
        checked: set[int] = set()
        while len(checked) < len(self.pointers):
            for target in self.pointers - checked:
                checked.add(target)
                if self._kind_at(target) == _POINTER:
                    raise CorruptDatabase(f"a pointer points at another pointer (data offset {target})")
                self._walk(target)  # may add pointers found inside a mid-value target
        for target in self.key_pointers:
            if self._kind_at(target) != _STRING:
                raise CorruptDatabase(f"a map key points at a non-string (data offset {target})")

    def _expect_map(self, offset: int) -> None:
        if self._kind_at(offset) != _MAP:
            raise CorruptDatabase(f"a search tree record is not a map (data offset {offset})")

    def _kind_at(self, offset: int) -> int:
        """The type of the value at ``offset`` (known to be inside the data section)."""
        kind = self.data[offset] >> 5
        if not kind and offset + 1 < self.end:
            kind = 7 + self.data[offset + 1]
        return kind

    def _walk(self, pos: int) -> int:
        """Check the value at ``pos`` and everything inside it; return the offset after it.

        One flat loop with an explicit stack instead of a recursive descent: this
        runs for every value of the file, and Python calls are the main cost.
        """
        data, end = self.data, self.end
        pointers, key_pointers = self.pointers, self.key_pointers
        stack: list[tuple[int, bool]] = []
        left, in_map = 1, False  # values left in the current container
        while True:
            if not left:
                if not stack:
                    return pos
                left, in_map = stack.pop()
                continue
            is_key = in_map and not left & 1  # a map holds key, value, key, value...
            left -= 1
            if pos >= end:
                raise CorruptDatabase(f"a value starts past the end of the data section ({pos})")
            start = pos
            ctrl = data[pos]
            kind = ctrl >> 5
            pos += 1
            if kind == _POINTER:
                width = ((ctrl >> 3) & 3) + 1
                if pos + width > end:
                    raise CorruptDatabase(f"a pointer is truncated (data offset {start})")
                # Spelled out per width: pointers are most of a deduplicated file.
                if width == 1:
                    target = (ctrl & 7) << 8 | data[pos]
                elif width == 2:
                    target = ((ctrl & 7) << 16 | data[pos] << 8 | data[pos + 1]) + 2048
                elif width == 3:
                    target = ((ctrl & 7) << 24 | data[pos] << 16 | data[pos + 1] << 8 | data[pos + 2]) + 526336
                else:
                    target = int.from_bytes(data[pos : pos + 4], "big")
                if target >= end:
                    raise CorruptDatabase(f"a pointer points past the data section (data offset {start})")
                pos += width
                pointers.add(target)
                if is_key:
                    key_pointers.add(target)
                continue
            if not kind:  # extended type in the next byte
                if pos >= end:
                    raise CorruptDatabase(f"a value is truncated (data offset {start})")
                kind = 7 + data[pos]
                pos += 1
                if kind not in _EXTENDED:
                    raise CorruptDatabase(f"unknown data type {kind} (data offset {start})")
            if is_key and kind != _STRING:
                raise CorruptDatabase(f"a map key of type {kind} (data offset {start})")
            size = ctrl & 0x1F
            if size >= 29:
                width = size - 28
                if pos + width > end:
                    raise CorruptDatabase(f"a value's size is truncated (data offset {start})")
                size = _SIZE_BIAS[width] + int.from_bytes(data[pos : pos + width], "big")
                pos += width
            if kind in (_MAP, _ARRAY):
                if len(stack) >= _MAX_DEPTH:
                    raise CorruptDatabase(f"values nested too deep (data offset {start})")
                stack.append((left, in_map))
                left, in_map = (2 * size, True) if kind == _MAP else (size, False)
                continue
            if kind == _BOOLEAN:
                if size > 1:
                    raise CorruptDatabase(f"a boolean of size {size} (data offset {start})")
                continue
            if kind in _EXACT_SIZE and size != _EXACT_SIZE[kind]:
                raise CorruptDatabase(
                    f"a {'double' if kind == _DOUBLE else 'float'} of {size} bytes "
                    f"instead of {_EXACT_SIZE[kind]} (data offset {start})"
                )
            if kind in _MAX_SIZE and size > _MAX_SIZE[kind]:
                raise CorruptDatabase(f"an integer of {size} bytes, type {kind} (data offset {start})")
            after = pos + size
            if after > end:
                raise CorruptDatabase(f"a value runs past the data section (data offset {start})")
            if kind == _STRING:
                try:
                    str(data[pos:after], "utf-8")
                except UnicodeDecodeError:
                    raise CorruptDatabase(f"a string is not UTF-8 (data offset {start})") from None
            pos = after
