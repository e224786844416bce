"""Compiling a GeoIP database and the operator's networks into network -> area runs.

Off the query path, in a process of its own (``build_file``, started by the
``Locator``), so the answer loop keeps its core while a City database is read:

1. the search tree is walked level by level with numpy, one array operation per
   level (a City database has millions of nodes; a Python loop per node takes
   a minute).  Each leaf is a network and the record it points at.  The IPv4
   tree is walked once, not again under each of its IPv6 aliases (::/96,
   ::ffff:0:0/96, 2002::/16): those ranges are marked ``EXACT`` and the
   ``Locator`` answers them as before.
2. each distinct record is decoded once (by maxminddb's C reader at one of its
   addresses) into a location, and each location into its area (``areas.py``);
3. the operator's ``geoip.networks`` are painted over the result, shortest
   prefix first, so the longest match wins as in ``Locator``;
4. adjacent networks of the same area are merged into one run.

The result (``Compiled``) is saved as a .npz file named by a digest of the
database bytes, the networks and the regions, so workers and restarts load
it instead of compiling it again (the ``Locator`` holds a lock around ``build_file``).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import maxminddb
import numpy as np

from ..config.model import Region
from .areas import RegionIndex, area_key
from .integrity import CorruptDatabase, check_mmdb, tree_records
from .location import Location, nowhere

FORMAT = 2  # bump when the file layout or the area rules change (2: files made before the compile checked its bytes may hold another database's areas)
EXACT = -1  # an area id: not compiled here, ask the Locator

# (version, network as int, prefix length, region): operator networks, IPv4-mapped ones already IPv4.
Network = tuple[int, int, int, str]


@dataclass
class Compiled:
    """Runs per IP version: ``starts[i]`` is where run i begins (it ends where i+1 begins) and
    ``ids[i]`` its area (an index into ``areas``, or ``EXACT``).  ``areas`` holds one location
    per area, standing for all its places."""

    v4_starts: list[int]
    v4_ids: list[int]
    v6_starts: list[int]  # empty when the database has no IPv6 tree: the Locator answers those
    v6_ids: list[int]
    areas: list[Location]


def digest(
    database: bytes, networks: Sequence[Network], regions: Mapping[str, Region], unlocated: str | None = None
) -> str:
    """What a compiled file depends on, as a file name."""
    h = hashlib.sha256(database)
    depends: tuple = (FORMAT, sorted(networks), sorted(astuple(r) for r in regions.values()))
    if unlocated is not None:  # (without it, the names files had before geoip.unlocated)
        depends += (unlocated,)
    h.update(repr(depends).encode())
    return h.hexdigest()[:32]


CHANGED = 3  # build_file's exit code when the file is not the one the caller named ``out`` after


def build_file(
    database: Path,
    networks: Sequence[Network],
    regions: Mapping[str, Region],
    out: Path,
    verify: bool = False,
    damage: Path | None = None,
    expect: bytes | None = None,
    unlocated: str | None = None,
) -> None:
    """Compile into ``out`` (a .npz); with ``verify``, check the whole file first (``check_mmdb``)
    and, if it is damaged, write the reason to ``damage`` instead.  The caller holds the lock.

    ``expect``: the SHA-256 of the bytes the caller located with and named ``out`` after.  The
    file is read again here, and an updater (geoipupdate) may have replaced it since: then
    nothing is written and the process exits with ``CHANGED``, since a file named after one
    database but compiled from another would be loaded by every later start of that one.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = database.read_bytes()
    if expect is not None and hashlib.sha256(buf).digest() != expect:
        raise SystemExit(CHANGED)
    if verify:
        meta = maxminddb.open_database(str(database), maxminddb.MODE_AUTO).metadata()
        try:
            check_mmdb(buf, meta.node_count, meta.record_size)
        except CorruptDatabase as exc:
            if damage is not None:
                damage.write_text(str(exc))
            return
        _give_back()  # the check's copies, before the compile's own peak
    held = [buf]
    del buf  # compile_database drops the bytes once the tree is read; no reference here keeps them
    save(compile_database(held.pop(), database, networks, regions, unlocated), out)


def save(compiled: Compiled, out: Path) -> None:
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as file:
        v6 = compiled.v6_starts
        np.savez(
            file,
            v4_starts=np.array(compiled.v4_starts, dtype=np.uint32),
            v4_ids=np.array(compiled.v4_ids, dtype=np.int32),
            v6_hi=np.array([s >> 64 for s in v6], dtype=np.uint64),
            v6_lo=np.array([s & 0xFFFFFFFFFFFFFFFF for s in v6], dtype=np.uint64),
            v6_ids=np.array(compiled.v6_ids, dtype=np.int32),
            areas=np.array(json.dumps([astuple(a) for a in compiled.areas])),
        )
    os.replace(tmp, out)


def load(path: Path) -> Compiled:
    with np.load(path) as data:
        hi, lo = data["v6_hi"].tolist(), data["v6_lo"].tolist()
        return Compiled(
            data["v4_starts"].tolist(),
            data["v4_ids"].tolist(),
            [h << 64 | low for h, low in zip(hi, lo)],
            data["v6_ids"].tolist(),
            [Location(*fields) for fields in json.loads(str(data["areas"]))],
        )


def compile_database(
    buf: bytes, path: Path, networks: Sequence[Network], regions: Mapping[str, Region], unlocated: str | None = None
) -> Compiled:
    """The runs for a database (its bytes, and its path for the C reader) and the operator networks;
    ``unlocated``: the region of addresses the database does not place (``location.nowhere``)."""
    reader = maxminddb.open_database(str(path), maxminddb.MODE_AUTO)
    try:
        meta = reader.metadata()
        n = meta.node_count
        has_coordinates = "City" in meta.database_type or "Enterprise" in meta.database_type
        records = np.frombuffer(
            tree_records(memoryview(buf)[: n * meta.record_size // 4], meta.record_size), dtype=np.uint32
        )
        records = records.reshape(-1, 2)
        v4_root = 0
        if meta.ip_version == 6:
            for _ in range(96):
                if v4_root >= n:
                    break
                v4_root = int(records[v4_root, 0])
        del buf
        builder = _Builder(reader, n, has_coordinates, RegionIndex.of(regions), unlocated)
        leaves = _walk(records, n, v4_root, 32, -1)
        _give_back()
        v4 = builder.runs(*leaves, 4)
        del leaves
        v6 = builder.runs(*_walk(records, n, 0, 128, v4_root), 6) if meta.ip_version == 6 else ([], [])
    finally:
        reader.close()
    out = Compiled(v4[0], v4[1], v6[0], v6[1], builder.representatives)
    for version, starts, ids in ((4, out.v4_starts, out.v4_ids), (6, out.v6_starts, out.v6_ids)):
        if not starts and version == 6:
            continue
        bits = 32 if version == 4 else 128
        mine = [net for net in networks if net[0] == version]
        # Shortest first, and the first listing of a network last: the longest match wins, then the first.
        order = sorted(range(len(mine)), key=lambda i: (mine[i][2], -i))
        for i in order:
            _, value, length, region = mine[i]
            area = builder.area(Location(region, None, None, None, None, 0, "networks"))
            _paint(starts, ids, value, value + (1 << (bits - length)), area, bits)
        _merge(starts, ids)
    out.areas = builder.representatives
    return out


def _walk(records: np.ndarray, n: int, root: int, bits: int, alias: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every leaf under ``root`` in address order, adjacent leaves of one record merged:
    (start's high 64 bits, its low 64 bits, record value).

    A value of ``n`` is "no data"; above ``n`` a data pointer; ``alias`` (the IPv4 root met
    again inside the IPv6 tree) becomes -1.  Node ids stay uint32 and the high half of a
    start exists only past 64 bits: a City database's IPv4 tree has over two million leaves,
    and the arrays of one level are the compile's peak memory.
    """
    wide = bits > 64
    lo = np.zeros(1, np.uint64)
    hi = np.zeros(1, np.uint64)
    if root >= n:  # the whole tree is one leaf
        return hi, lo, np.array([root], np.int64)
    node = np.array([root], np.uint32)
    out_hi, out_lo, out_val = [], [], []
    for depth in range(bits):
        child = records[node].ravel()  # left, right, left, right, ...: address order within the level
        bit = bits - 1 - depth
        c_lo = np.repeat(lo, 2)
        c_hi = np.repeat(hi, 2) if wide else hi
        if bit >= 64:
            c_hi[1::2] |= np.uint64(1 << (bit - 64))
        else:
            c_lo[1::2] |= np.uint64(1 << bit)
        leaf = child >= n
        if alias >= 0:
            leaf |= child == alias
        if leaf.any():
            values = child[leaf].astype(np.int64)
            if alias >= 0:
                values[values == alias] = -1
            out_val.append(values)
            out_lo.append(c_lo[leaf])
            if wide:
                out_hi.append(c_hi[leaf])
        inner = ~leaf
        node, lo = child[inner], c_lo[inner]
        if wide:
            hi = c_hi[inner]
        del child, c_lo, leaf, inner
        if node.size == 0:
            break
    all_lo = np.concatenate(out_lo)
    del out_lo
    if wide:
        all_hi = np.concatenate(out_hi)
        order = np.lexsort((all_lo, all_hi))
    else:
        all_hi = np.zeros(len(all_lo), np.uint64)
        order = np.argsort(all_lo, kind="stable")
    values = np.concatenate(out_val)[order]
    keep = np.ones(len(values), bool)
    keep[1:] = values[1:] != values[:-1]
    return all_hi[order[keep]], all_lo[order[keep]], values[keep]


def _give_back() -> None:
    """Return the heap the walk freed to the system (glibc keeps it otherwise): the compile's peak
    is the server's too, under one memory budget.  Best effort; elsewhere a no-op."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _Builder:
    """Decodes records into places and places into areas, each once."""

    def __init__(self, reader, n: int, has_coordinates: bool, index: RegionIndex, unlocated: str | None = None):
        self.reader, self.n, self.has_coordinates, self.index = reader, n, has_coordinates, index
        self.unlocated = unlocated
        self.representatives: list[Location] = []
        self._ids: dict[tuple, int] = {}  # area key -> id
        self._by_value: dict[int, int] = {}  # record value -> area id
        self._by_place: dict[tuple, int] = {}  # (region, country, continent, lat, lon) -> area id

    def area(self, location: Location) -> int:
        place = location.region, location.country, location.continent, location.lat, location.lon
        found = self._by_place.get(place)
        if found is None:
            found = self._by_place[place] = self._area(location)
        return found

    def _area(self, location: Location) -> int:
        key = area_key(location, self.index)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self.representatives)
            source = location.source if location.source == "none" else "area"
            self.representatives.append(
                Location(location.region, location.country, location.continent, location.lat, location.lon, 0, source)
            )
        return found

    def runs(self, hi: np.ndarray, lo: np.ndarray, values: np.ndarray, version: int) -> tuple[list, list]:
        """(starts, area ids) for the leaves, adjacent runs of one area merged."""
        distinct, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        by_distinct = []
        for value, at in zip(distinct.tolist(), first.tolist()):
            area = self._by_value.get(value)
            if area is None:
                area = self._by_value[value] = self._decode(value, int(hi[at]) << 64 | int(lo[at]), version)
            by_distinct.append(area)
        ids = np.array(by_distinct, np.int64)[inverse.reshape(-1)]
        keep = np.ones(len(ids), bool)
        keep[1:] = ids[1:] != ids[:-1]
        hi_list, lo_list = hi[keep].tolist(), lo[keep].tolist()
        starts = [h << 64 | low for h, low in zip(hi_list, lo_list)] if version == 6 else lo_list
        return starts, ids[keep].tolist()

    def _decode(self, value: int, start: int, version: int) -> int:
        if value < 0:
            return EXACT
        if value == self.n:
            return self.area(nowhere(0, self.unlocated))
        address = IPv4Address(start) if version == 4 else IPv6Address(start)
        try:
            record = self.reader.get(address)
        except Exception:  # noqa: BLE001 - a record that does not decode: the Locator counts it per query
            return EXACT
        if not isinstance(record, dict):
            return EXACT
        country = _code(record.get("country"), "iso_code")
        continent = _code(record.get("continent"), "code")
        lat = lon = None
        where = record.get("location")
        if self.has_coordinates and isinstance(where, dict):
            lat, lon = where.get("latitude"), where.get("longitude")
            if not isinstance(lat, float) or not isinstance(lon, float):
                lat = lon = None
        if country is None and continent is None and lat is None:
            return self.area(nowhere(0, self.unlocated))
        return self.area(Location(None, country, continent, lat, lon, 0, "geoip"))


def _code(part: object, key: str) -> str | None:
    value = part.get(key) if isinstance(part, dict) else None
    return value.upper() if isinstance(value, str) and value else None


def _paint(starts: list[int], ids: list[int], a: int, b: int, area: int, bits: int) -> None:
    """Make [a, b) one run of ``area``; ``starts`` covers the whole space from 0."""
    i = bisect_right(starts, a) - 1
    j = bisect_right(starts, b - 1) - 1
    new_starts, new_ids = [a], [area]
    if b < 1 << bits and (j + 1 >= len(starts) or starts[j + 1] != b):
        new_starts.append(b)
        new_ids.append(ids[j])
    lo = i + 1 if starts[i] < a else i
    starts[lo : j + 1] = new_starts
    ids[lo : j + 1] = new_ids


def _merge(starts: list[int], ids: list[int]) -> None:
    """Join adjacent runs of one area, in place."""
    if not ids:
        return
    out_s, out_i = [starts[0]], [ids[0]]
    for s, i in zip(starts, ids):
        if i != out_i[-1]:
            out_s.append(s)
            out_i.append(i)
    starts[:], ids[:] = out_s, out_i
