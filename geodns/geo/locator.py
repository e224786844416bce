"""Client address -> Location: operator networks, then the GeoIP database, cached per network.

Everything slow happens in ``Locator.__init__``: the database is read into
memory and checked from end to end (``integrity.check_mmdb``), so a bad file
is a ``ConfigError`` at load time and ``locate`` touches memory only.

The ``prefix`` of every Location is the largest network around the address
in which every address gets the same answer.  That is the database's network
(or the operator CIDR that matched), narrowed just enough to leave out any
more specific operator CIDR inside it: with 10.0.0.0/8 -> a and
10.20.0.0/16 -> b, 10.1.2.3 gets a with prefix 12, not 8, because a resolver
would otherwise reuse a for the clients in 10.20/16.  Because these networks
never overlap, they are also the keys of the cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import multiprocessing
import os
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import geoip2.database
import geoip2.errors
import geoip2.models
import maxminddb

from ..config.model import GeoIPConfig, GeoNetwork, IPAddress, Region
from ..errors import ConfigError, Problem
from . import compile as areas_compile
from .integrity import CorruptDatabase, check_mmdb
from .location import Location, nowhere
from .netmap import AreaMap

log = logging.getLogger(__name__)

try:
    import maxminddb.extension

    _HAVE_EXTENSION = hasattr(maxminddb.extension, "Reader")
except ImportError:  # pragma: no cover - a maxminddb built without its C extension
    _HAVE_EXTENSION = False

DEFAULT_CACHE_SIZE = 65536  # networks, not addresses
_BITS = {4: 32, 6: 128}
_MAPPED_PREFIX = 0xFFFF  # ::ffff:0:0/96, IPv4-mapped IPv6, seen above the low 32 bits

_Model = geoip2.models.City | geoip2.models.Country


class Locator:
    """Answers "where is this address" from the operator's networks and a GeoIP database."""

    def __init__(
        self,
        geoip: GeoIPConfig,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        native: bool = True,
        verify: bool = True,
        regions: Mapping[str, Region] | None = None,
        defer_verify: bool = False,
    ) -> None:
        """Load and check everything; raise ConfigError for an unusable database.

        ``native`` lets lookups use maxminddb's C extension over an in-memory
        copy of the file (see ``_native_reader``), 3 to 5 times faster than
        the pure-Python reader, which is the fallback and what ``False`` forces.
        ``verify`` runs ``check_mmdb`` over the whole file (about 0.1 s per MB);
        without it a damaged record is only found by the query that reaches it,
        which then gets a "none" Location and counts in ``errors``.
        ``regions``: compile the database into an ``AreaMap`` for ``area`` (off
        this thread and process; ``areas`` is None until it is ready).
        ``defer_verify`` (with ``regions``: the server starting) moves the
        whole-file check into the compile, which reads every record anyway: a
        City database takes ~8 s to check, and the server answers meanwhile.  A
        damaged file is then logged as an error and never compiled (a compiled
        file on disk is one that passed), and clients are located per query.
        """
        self._networks = {4: _PrefixTable(32), 6: _PrefixTable(128)}
        self._unlocated = geoip.unlocated
        for entry in geoip.networks:
            version, value, length = _normalise_network(entry)
            self._networks[version].add(value, length, entry.region)
        self.database_type: str | None = None
        self.reader_mode = "none"  # "native" | "memory" | "none": for logs and tests
        self._ip_version = 0  # of the database: 4 or 6, 0 without one
        self._query: Callable[[IPAddress], _Model] | None = None
        self._has_coordinates = False
        self._digest: bytes | None = None  # SHA-256 of the database bytes read
        compiling = regions is not None and geoip.database is not None
        if geoip.database is not None:
            self._open(Path(geoip.database), native, verify and not (compiling and defer_verify), compiling)
        self._cache_size = cache_size
        # Per IP version: [(shift, {address >> shift: Location})], one table per prefix length.
        self._cache: dict[int, list[tuple[int, dict[int, Location]]]] = {4: [], 6: []}
        self._cache_order: deque[tuple[dict[int, Location], int]] = deque()
        self.errors = 0  # records that failed to decode at query time
        self.areas: AreaMap | None = None  # set once, by the compiling thread
        self.areas_ready = threading.Event()
        self._compiling: tuple | None = None
        if compiling:
            assert geoip.database is not None and regions is not None
            normalised = [(*_normalise_network(e), e.region) for e in geoip.networks]
            self._compiling = (
                Path(geoip.database),
                normalised,
                dict(regions),
                verify and defer_verify,
                self._unlocated,
            )
            self._start_compiling()
            # A worker forked before the areas are ready has no compiling thread (fork copies only
            # the forking one): it starts its own, which waits for the same file and loads it.
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _resume(ref))
        else:
            self.areas_ready.set()

    def _start_compiling(self) -> None:
        threading.Thread(
            target=self._compile_areas, args=self._compiling or (), name="geoip-areas", daemon=True
        ).start()

    # -- construction -----------------------------------------------------------------------

    def _open(self, path: Path, native: bool, verify: bool, digest: bool) -> None:
        """Read, check and open the database, or raise ConfigError naming the file."""

        def fail(reason: str) -> ConfigError:
            return ConfigError([Problem(str(path), None, f"geoip.database: {reason}")])

        try:
            buf = path.read_bytes()
        except FileNotFoundError:
            raise fail("file not found") from None
        except IsADirectoryError:
            raise fail("is a directory, not a .mmdb file") from None
        except OSError as exc:
            raise fail(f"cannot read: {exc.strerror or exc}") from None
        try:
            # MODE_FD reads the whole file object into memory (here, the bytes we
            # already hold): lookups then never touch the file system.
            reader = geoip2.database.Reader(io.BytesIO(buf), mode=maxminddb.MODE_FD)
            metadata = reader.metadata()
        except Exception as exc:  # noqa: BLE001 - maxminddb raises several types for a bad file
            raise fail(f"not a valid MaxMind DB file ({exc})") from None
        kind = metadata.database_type
        if "City" in kind or "Enterprise" in kind:  # Enterprise: a City database with more fields
            method, self._has_coordinates = ("city" if "City" in kind else "enterprise"), True
        elif "Country" in kind:
            method = "country"
        else:
            raise fail(
                f"database type {kind!r} has no locations; use a City or Country database (GeoIP2, GeoLite2, DB-IP)"
            )
        if verify:
            try:
                check_mmdb(buf, metadata.node_count, metadata.record_size)
            except CorruptDatabase as exc:
                raise fail(f"corrupt MaxMind DB file: {exc}") from None
        if digest:  # names the compiled areas (``_compile_areas``); only a compiling Locator needs it
            self._digest = hashlib.sha256(buf).digest()
        self.reader_mode = "memory"
        if native:
            fast = _native_reader(buf)
            if fast is not None:
                reader, self.reader_mode = fast, "native"
        self._query = getattr(reader, method)
        self.database_type = kind
        self._ip_version = metadata.ip_version

    def _compile_areas(
        self, database: Path, networks: list, regions: dict[str, Region], verify: bool, unlocated: str | None
    ) -> None:
        """Compile (or load the compiled) areas in a child process; the answer loop keeps its core.

        The file lives in the cache directory (``GEODNS_CACHE_DIR``, else the user's cache
        directory), named by the digest of what it depends on, so a restart or a second
        worker loads it in a fraction of a second.  A lock next to it makes every other
        process that wants the same file (workers, a second server) wait for the one
        compiling it, then load it.
        """
        try:
            # The digest of the very bytes this Locator reads (``_open``), not of the file as it is now:
            # an updater may have replaced it since, and the compile checks that it reads them too.
            data_digest = self._digest
            assert data_digest is not None, "compiling needs a database"
            name = areas_compile.digest(data_digest, networks, regions, unlocated)
            directory = cache_dir()
            directory.mkdir(parents=True, exist_ok=True)
            out = directory / f"areas-{name}.npz"
            if not _compile_once(out, database, networks, regions, verify, data_digest, unlocated):
                return
            areas = AreaMap(areas_compile.load(out))
            self.areas = areas
            log.info("event=geo-areas-ready runs=%d areas=%d file=%s", areas.runs, len(areas.areas), out)
        except Exception as exc:  # noqa: BLE001 - without areas every query uses locate(), as before
            log.warning("geoip: no compiled areas (%s); locating each network as before", exc)
        finally:
            self.areas_ready.set()

    # -- the query path ---------------------------------------------------------------------

    def area(self, address: IPAddress) -> Location:
        """Where ``address`` is as far as the ``geo`` filter can tell: the Location standing for
        its area (source "area", or "none"), with ``prefix`` the widest network of that area.
        Until the areas are compiled, and for the few ranges they leave out, ``locate``.
        """
        found = self.area_of(address.version, int(address))
        return found if found is not None else self.locate(address)

    def area_of(self, version: int, value: int) -> Location | None:
        """``area`` for an address given as its IP version and integer; None until the areas are
        compiled and for the few ranges they leave out (ask ``locate`` then)."""
        areas = self.areas
        if areas is None:
            return None
        if version == 6 and value >> 32 == _MAPPED_PREFIX:
            found = areas.locate(4, value & 0xFFFFFFFF)
            # The scope counts the 96 bits of ::ffff:0:0/96 too.
            return None if found is None else areas.widened(found, 96)
        return areas.locate(version, value)

    def locate(self, address: IPAddress) -> Location:
        """Where ``address`` is.  Memory only, never raises for an address."""
        value = int(address)
        if address.version == 6 and value >> 32 == _MAPPED_PREFIX:
            version, value = 4, value & 0xFFFFFFFF
        else:
            version = address.version
        for shift, table in self._cache[version]:
            found = table.get(value >> shift)
            if found is not None:
                return found
        location, cacheable = self._resolve(version, value)
        if cacheable:
            self._remember(version, value, location)
        return location

    def cache_len(self) -> int:
        """How many networks are cached (for tests and metrics)."""
        return len(self._cache_order)

    def _resolve(self, version: int, value: int) -> tuple[Location, bool]:
        """The uncached lookup: operator networks, else the database, then the scope.

        Returns the Location and whether it may be cached for its network.
        """
        networks = self._networks[version]
        match = networks.longest_match(value)
        if match is not None:
            length, region = match
            scope = networks.uniform_prefix(value, length)
            return Location(region, None, None, None, None, scope, "networks"), True
        location = self._from_database(version, value)
        if location is None:
            # The record could not be decoded, so its network is unknown: claim
            # nothing beyond this address and do not cache.
            return nowhere(_BITS[version], self._unlocated), False
        scope = networks.uniform_prefix(value, location.prefix)
        if scope != location.prefix:
            location = replace(location, prefix=scope)
        return location, True

    def _from_database(self, version: int, value: int) -> Location | None:
        """The database's answer, prefix = its network's length; None on a decode error."""
        query = self._query
        if query is None or (version == 6 and self._ip_version == 4):
            return nowhere(0, self._unlocated)
        address = IPv4Address(value) if version == 4 else IPv6Address(value)
        try:
            model = query(address)
        except geoip2.errors.AddressNotFoundError as exc:
            network = exc.network
            return nowhere(network.prefixlen if network is not None else 0, self._unlocated)
        except Exception as exc:  # noqa: BLE001 - the file checked out; a semantic oddity must not crash a query
            self.errors += 1
            log.debug("geoip: cannot decode the record of %s: %s", address, exc)
            return None
        network = model.traits.network
        prefix = network.prefixlen if network is not None else _BITS[version]
        country = model.country.iso_code
        continent = model.continent.code
        lat = lon = None
        if self._has_coordinates:
            lat = model.location.latitude  # type: ignore[attr-defined]  # a City model: the database has coordinates
            lon = model.location.longitude  # type: ignore[attr-defined]
            if lat is None or lon is None:
                lat = lon = None
        if country is None and continent is None and lat is None:
            return nowhere(prefix, self._unlocated)  # e.g. anycast-only
        return Location(
            None,
            country.upper() if country else None,
            continent.upper() if continent else None,
            lat,
            lon,
            prefix,
            "geoip",
        )

    def _remember(self, version: int, value: int, location: Location) -> None:
        """Cache ``location`` for its whole network; drop the oldest network when full."""
        if self._cache_size <= 0:
            return
        shift = _BITS[version] - location.prefix
        probes = self._cache[version]
        for index, (probe_shift, table) in enumerate(probes):  # noqa: B007 - index and table are used after the break
            if probe_shift == shift:
                break
        else:
            table = {}
            index = len(probes)
            probes.append((shift, table))
        key = value >> shift
        if key in table:
            return
        table[key] = location
        # Cached networks never overlap, so the probe order only matters for speed:
        # keep the fullest tables (the likeliest to hold the next client) in front.
        while index > 0 and len(probes[index - 1][1]) < len(table):
            probes[index - 1], probes[index] = probes[index], probes[index - 1]
            index -= 1
        self._cache_order.append((table, key))
        while len(self._cache_order) > self._cache_size:
            old_table, old_key = self._cache_order.popleft()
            old_table.pop(old_key, None)


# One compile per file: across processes by a POSIX lock on a file beside it (a forked child does
# not inherit it, so a worker forked mid-compile waits for its parent's and then loads the file),
# within a process by a thread lock per file (new ones in a forked child: a copied lock could be
# held by a thread that does not exist there).
_COMPILING: dict[Path, threading.Lock] = {}


def _forget_thread_locks() -> None:
    _COMPILING.clear()


os.register_at_fork(after_in_child=_forget_thread_locks)


def _compile_once(
    out: Path,
    database: Path,
    networks: list,
    regions: dict[str, Region],
    verify: bool,
    expect: bytes,
    unlocated: str | None,
) -> bool:
    """Make ``out`` in a child process unless it exists; False when it could not be made."""
    with _COMPILING.setdefault(out, threading.Lock()), open(out.with_suffix(".lock"), "w") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX)
        if out.exists():
            return True
        damage = out.with_suffix(".damaged")
        child = multiprocessing.get_context("spawn").Process(
            target=areas_compile.build_file,
            args=(database, networks, regions, out, verify, damage, expect, unlocated),
            daemon=True,
        )
        child.start()
        child.join()
        if damage.exists():
            reason = damage.read_text()
            damage.unlink()
            log.error(
                "geoip.database %s: corrupt MaxMind DB file: %s; not compiled: each client is located "
                "per query, and one whose record is damaged counts as unknown",
                database,
                reason,
            )
            return False
        if child.exitcode == areas_compile.CHANGED:
            log.warning(
                "geoip.database %s changed while starting (an update?): not compiled; each client is "
                "located per query until the next reload",
                database,
            )
            return False
        if child.exitcode != 0:
            log.warning("geoip: compiling the database into areas failed (exit %s)", child.exitcode)
            return False
        return True


def _resume(ref: weakref.ref[Locator]) -> None:
    """In a forked child: compile (wait for, load) the areas if the parent had not got them yet."""
    locator = ref()
    if locator is not None and locator.areas is None and locator._compiling is not None:
        locator.areas_ready = threading.Event()
        locator._start_compiling()


def cache_dir() -> Path:
    """Where compiled areas are kept: ``GEODNS_CACHE_DIR``, else $XDG_CACHE_HOME/geodns or ~/.cache/geodns,
    else (none writable) a directory of our own under the system's temporary directory."""
    explicit = os.environ.get("GEODNS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "geodns"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="geodns-cache-"))


def _native_reader(buf: bytes) -> geoip2.database.Reader | None:
    """A reader on maxminddb's C extension over an anonymous in-memory file, or None.

    The C extension only opens a path and mmaps it.  Mapping the operator's
    file itself would make queries fault pages in from disk, and a ``cp``
    over the file while it is mapped would crash the process (SIGBUS).  A
    memfd holds the very bytes that ``check_mmdb`` verified, lives in RAM,
    and nobody else can change it.  Linux only; elsewhere this returns None
    and the pure-Python in-memory reader is used.
    """
    if not _HAVE_EXTENSION or not hasattr(os, "memfd_create"):
        return None
    try:
        fd = os.memfd_create("geodns-geoip", os.MFD_CLOEXEC)
    except OSError:
        return None
    try:
        with open(fd, "wb", closefd=False) as file:
            file.write(buf)
        return geoip2.database.Reader(f"/proc/self/fd/{fd}", mode=maxminddb.MODE_MMAP_EXT)
    except Exception as exc:  # noqa: BLE001 - no /proc, or the C reader refuses the file: pure Python will do
        log.warning(
            "geoip: maxminddb's C extension cannot open the database (%s); using the slower pure-Python reader", exc
        )
        return None
    finally:
        os.close(fd)  # the mapping outlives the descriptor


class _PrefixTable:
    """Operator CIDRs of one IP version: longest-prefix match by one dict lookup per length.

    ``inside[s]`` holds the s-bit prefixes of every CIDR longer than s: the
    networks of length s that are not uniform because a more specific CIDR
    sits inside them.  ``uniform_prefix`` walks it to find the ECS scope.
    """

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.by_length: dict[int, dict[int, str]] = {}
        self.probes: tuple[tuple[int, int, dict[int, str]], ...] = ()
        self.inside: list[set[int]] = [set() for _ in range(bits + 1)]

    def add(self, value: int, length: int, region: str) -> None:
        """Add a CIDR; when one is listed twice, the first listing wins."""
        table = self.by_length.setdefault(length, {})
        table.setdefault(value >> (self.bits - length), region)
        self.probes = tuple(
            (length, self.bits - length, self.by_length[length]) for length in sorted(self.by_length, reverse=True)
        )
        for s in range(length):
            self.inside[s].add(value >> (self.bits - s))

    def longest_match(self, value: int) -> tuple[int, str] | None:
        for length, shift, table in self.probes:
            region = table.get(value >> shift)
            if region is not None:
                return length, region
        return None

    def uniform_prefix(self, value: int, prefix: int) -> int:
        """The shortest length >= prefix whose network around ``value`` holds no more specific CIDR."""
        bits, inside = self.bits, self.inside
        while prefix < bits and (value >> (bits - prefix)) in inside[prefix]:
            prefix += 1
        return prefix


def _normalise_network(entry: GeoNetwork) -> tuple[int, int, int]:
    """(version, network address as int, prefix length); IPv4-mapped IPv6 CIDRs become IPv4.

    ``locate`` turns ::ffff:a.b.c.d into a.b.c.d, so a CIDR written in the
    mapped form must live in the IPv4 table to ever match.
    """
    network = entry.network
    value = int(network.network_address)
    if isinstance(network, IPv6Network) and network.prefixlen >= 96 and value >> 32 == _MAPPED_PREFIX:
        return 4, value & 0xFFFFFFFF, network.prefixlen - 96
    assert isinstance(network, (IPv4Network, IPv6Network))
    return network.version, value, network.prefixlen
