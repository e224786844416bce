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
Python objects, so it costs one pass over the file: full decoding of every
record with the pure-Python decoder is ~50 times slower on a City database.
"""
from __future__ import annotations

import sys
from array import array

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
_SEPARATOR = 16                      # zero bytes between the tree and the data section
_POINTER_BIAS = (0, 2048, 526336, 0)  # added to a pointer's value, by its size in bytes - 1

# Types of the MaxMind DB data section (spec section "Output Data Section").
_POINTER, _STRING, _DOUBLE, _BYTES, _UINT16, _UINT32, _MAP = 1, 2, 3, 4, 5, 6, 7
_INT32, _UINT64, _UINT128, _ARRAY, _BOOLEAN, _FLOAT = 8, 9, 10, 11, 14, 15
# Payload size limits for the fixed-width types; None means "any size".
_MAX_SIZE: dict[int, int] = {_UINT16: 2, _UINT32: 4, _INT32: 4, _UINT64: 8, _UINT128: 16}
_EXACT_SIZE: dict[int, int] = {_DOUBLE: 8, _FLOAT: 4}
_MAX_DEPTH = 512                     # the same nesting limit maxminddb's decoder enforces


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
    data = memoryview(buf)[data_start:marker]
    records = _tree_records(memoryview(buf)[:tree_size], record_size)
    if len(records) != 2 * node_count:
        raise CorruptDatabase("the search tree is truncated")
    targets = _data_pointers(records, node_count, len(data))
    _Walker(data).check_all(targets)


def _tree_records(tree: memoryview, record_size: int) -> array:
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
            out[i + 1::4] = tree[i::3]
    elif record_size == 28:
        nodes = len(tree) // 7
        middle = bytes(tree[3::7])
        out = bytearray(8 * nodes)
        out[0::8] = middle.translate(_HIGH_NIBBLE)
        out[4::8] = middle.translate(_LOW_NIBBLE)
        for i in range(3):
            out[i + 1::8] = tree[i::7]
            out[i + 5::8] = tree[i + 4::7]
    else:
        raise CorruptDatabase(f"unknown record size {record_size}")
    records = array("I")
    if records.itemsize != 4:       # pragma: no cover - every supported platform has 4-byte "I"
        records = array("L")
    records.frombytes(bytes(out))
    if sys.byteorder == "little":
        records.byteswap()
    return records


_HIGH_NIBBLE = bytes(b >> 4 for b in range(256))
_LOW_NIBBLE = bytes(b & 0x0F for b in range(256))


def _data_pointers(records: array, node_count: int, data_size: int) -> set[int]:
    """The data-section offsets the tree points at; raise if one is out of range."""
    targets: set[int] = set()
    for value in set(records):
        if value <= node_count:     # a child node, or the empty marker
            continue
        offset = value - node_count - _SEPARATOR
        if not 0 <= offset < data_size:
            raise CorruptDatabase(f"a search tree record points outside the data section ({value})")
        targets.add(offset)
    return targets


class _Walker:
    """Reads values of the data section without decoding them into Python objects."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.end = len(data)
        self.pointers: set[int] = set()       # targets of pointers met inside values
        self.key_pointers: set[int] = set()   # targets of pointers used as map keys

    def check_all(self, records: set[int]) -> None:
        """Walk the data section front to back, then every pointer target."""
        offset = 0
        while offset < self.end:
            if offset in records:
                records.discard(offset)
                self._expect_map(offset)
            offset = self._value(offset, 0)
        for offset in records:                 # a record nested in another value: unusual, legal
            self._expect_map(offset)
            self._value(offset, 0)
        checked: set[int] = set()
        while self.pointers - checked:
            for target in self.pointers - checked:
                checked.add(target)
                if self._type_at(target) == _POINTER:
                    raise CorruptDatabase(f"a pointer points at another pointer (data offset {target})")
                self._value(target, 0)         # may add pointers found inside a mid-value target
        for target in self.key_pointers:
            if self._type_at(target) != _STRING:
                raise CorruptDatabase(f"a map key points at a non-string (data offset {target})")

    def _expect_map(self, offset: int) -> None:
        if self._type_at(offset) != _MAP:
            raise CorruptDatabase(f"a search tree record is not a map (data offset {offset})")

    def _type_at(self, offset: int) -> int:
        return self._header(offset)[0]

    def _header(self, offset: int) -> tuple[int, int, int]:
        """(type, size, payload offset) of the value at ``offset``; pointers: size = target."""
        data, end = self.data, self.end
        if offset >= end:
            raise CorruptDatabase(f"a value starts past the end of the data section ({offset})")
        ctrl = data[offset]
        kind = ctrl >> 5
        pos = offset + 1
        if kind == _POINTER:
            width = ((ctrl >> 3) & 3) + 1
            if pos + width > end:
                raise CorruptDatabase(f"a pointer is truncated (data offset {offset})")
            value = int.from_bytes(data[pos:pos + width], "big")
            if width < 4:
                value |= (ctrl & 7) << (8 * width)
            target = value + _POINTER_BIAS[width - 1]
            if target >= end:
                raise CorruptDatabase(f"a pointer points past the data section (data offset {offset})")
            return _POINTER, target, pos + width
        if kind == 0:                          # extended type in the next byte
            if pos >= end:
                raise CorruptDatabase(f"a value is truncated (data offset {offset})")
            kind = 7 + data[pos]
            pos += 1
            if kind not in (_INT32, _UINT64, _UINT128, _ARRAY, _BOOLEAN, _FLOAT):
                raise CorruptDatabase(f"unknown data type {kind} (data offset {offset})")
        size = ctrl & 0x1F
        if size >= 29:
            width = size - 28
            if pos + width > end:
                raise CorruptDatabase(f"a value's size is truncated (data offset {offset})")
            size = (29, 285, 65821)[width - 1] + int.from_bytes(data[pos:pos + width], "big")
            pos += width
        return kind, size, pos

    def _value(self, offset: int, depth: int) -> int:
        """Check the value at ``offset`` (and what it contains); return the offset after it."""
        kind, size, pos = self._header(offset)
        if kind == _POINTER:
            self.pointers.add(size)
            return pos
        if kind == _MAP or kind == _ARRAY:
            if depth >= _MAX_DEPTH:
                raise CorruptDatabase(f"values nested too deep (data offset {offset})")
            for _ in range(size):
                if kind == _MAP:
                    pos = self._key(pos)
                pos = self._value(pos, depth + 1)
            return pos
        if kind == _BOOLEAN:
            if size > 1:
                raise CorruptDatabase(f"a boolean of size {size} (data offset {offset})")
            return pos
        exact = _EXACT_SIZE.get(kind)
        if exact is not None and size != exact:
            raise CorruptDatabase(f"a {'double' if kind == _DOUBLE else 'float'} of {size} bytes "
                                  f"instead of {exact} (data offset {offset})")
        limit = _MAX_SIZE.get(kind)
        if limit is not None and size > limit:
            raise CorruptDatabase(f"an integer of {size} bytes, type {kind} (data offset {offset})")
        after = pos + size
        if after > self.end:
            raise CorruptDatabase(f"a value runs past the data section (data offset {offset})")
        if kind == _STRING:
            try:
                str(self.data[pos:after], "utf-8")
            except UnicodeDecodeError:
                raise CorruptDatabase(f"a string is not UTF-8 (data offset {offset})") from None
        return after

    def _key(self, offset: int) -> int:
        """Check a map key, which must be a string or a pointer to one."""
        kind, size, pos = self._header(offset)
        if kind == _POINTER:
            self.key_pointers.add(size)
            self.pointers.add(size)
            return pos
        if kind != _STRING:
            raise CorruptDatabase(f"a map key of type {kind} (data offset {offset})")
        return self._value(offset, 0)
