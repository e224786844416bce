"""geo/: where a client is, on the MaxMind test databases in tests/data/geo (see its README)."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.config.model import GeoIPConfig, GeoNetwork
from geodns.errors import ConfigError
from geodns.geo import UNKNOWN, Location, Locator, great_circle_km
from geodns.geo.integrity import METADATA_MARKER

DATA = Path(__file__).resolve().parent / "data" / "geo"
CITY = DATA / "GeoIP2-City-Test.mmdb"
COUNTRY = DATA / "GeoIP2-Country-Test.mmdb"
LITE_CITY = DATA / "GeoLite2-City-Test.mmdb"
BROKEN_DOUBLE = DATA / "GeoIP2-City-Test-Broken-Double-Format.mmdb"
BAD_NODE_COUNT = DATA / "GeoIP2-City-Test-Invalid-Node-Count.mmdb"
ASN = DATA / "GeoLite2-ASN-Test.mmdb"

ip = ipaddress.ip_address


def networks(*pairs: tuple[str, str]) -> tuple[GeoNetwork, ...]:
    return tuple(GeoNetwork(ipaddress.ip_network(cidr), region) for cidr, region in pairs)


@pytest.fixture(scope="module", params=[True, False], ids=["native", "memory"])
def city(request: pytest.FixtureRequest) -> Locator:
    """The City test database, through the C-extension reader and the pure-Python one."""
    locator = Locator(GeoIPConfig(database=CITY), native=request.param)
    assert locator.reader_mode == ("native" if request.param else "memory")
    return locator


# -- the database ------------------------------------------------------------------------------


def test_london(city: Locator) -> None:
    loc = city.locate(ip("81.2.69.142"))
    assert (loc.country, loc.continent, loc.source, loc.region) == ("GB", "EU", "geoip", None)
    assert loc.lat == pytest.approx(51.5142) and loc.lon == pytest.approx(-0.0931)
    assert loc.prefix == 31


@pytest.mark.parametrize(
    "address, country, continent, prefix",
    [
        ("214.0.0.1", "SG", "AS", 24),
        ("216.160.83.57", "US", "NA", 29),
        ("89.160.20.115", "SE", "EU", 28),
        ("175.16.199.7", "CN", "AS", 24),
        ("2001:218::1", "JP", "AS", 32),
        ("2a02:d3c0::1", "GB", "EU", 29),
    ],
)
def test_database_answers(city: Locator, address: str, country: str, continent: str, prefix: int) -> None:
    loc = city.locate(ip(address))
    assert (loc.country, loc.continent, loc.prefix, loc.source) == (country, continent, prefix, "geoip")
    assert loc.lat is not None and loc.lon is not None


def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4(city: Locator) -> None:
    assert city.locate(ip("::ffff:81.2.69.142")) == city.locate(ip("81.2.69.142"))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "fe80::1"])
def test_unknown_addresses_are_misses_with_a_scope(city: Locator, address: str) -> None:
    loc = city.locate(ip(address))
    assert (loc.source, loc.country, loc.continent, loc.lat, loc.region) == ("none", None, None, None, None)
    assert 0 < loc.prefix <= ip(address).max_prefixlen
    net = ipaddress.ip_network(f"{address}/{loc.prefix}", strict=False)
    assert city.locate(net.network_address) == loc  # the same miss for the whole network
    assert city.locate(net.broadcast_address) == loc


def test_records_without_a_country(city: Locator) -> None:
    only_continent = city.locate(ip("2.3.3.1"))  # continent, no country, no coordinates
    assert (only_continent.continent, only_continent.country, only_continent.lat) == ("EU", None, None)
    assert only_continent.source == "geoip"
    anycast = city.locate(ip("214.1.1.1"))  # a record that says no place at all
    assert (anycast.source, anycast.prefix) == ("none", 24)


def test_country_database_has_no_coordinates() -> None:
    locator = Locator(GeoIPConfig(database=COUNTRY))
    assert locator.database_type == "GeoIP2-Country"
    loc = locator.locate(ip("81.2.69.142"))
    assert (loc.country, loc.continent, loc.lat, loc.lon, loc.prefix) == ("GB", "EU", None, None, 31)
    assert locator.locate(ip("2001:218::1")).country == "JP"


def test_geolite_city() -> None:
    locator = Locator(GeoIPConfig(database=LITE_CITY))
    loc = locator.locate(ip("214.78.1.1"))
    assert (loc.country, loc.continent, loc.prefix) == ("US", "NA", 19)


def test_no_database_no_networks() -> None:
    locator = Locator(GeoIPConfig())
    assert locator.locate(ip("81.2.69.142")) == UNKNOWN
    assert locator.locate(ip("2001:db8::1")) == UNKNOWN
    assert locator.database_type is None


# -- operator networks -------------------------------------------------------------------------


def test_networks_win_over_the_database_and_longest_prefix_wins() -> None:
    locator = Locator(
        GeoIPConfig(
            database=CITY,
            networks=networks(
                ("10.0.0.0/8", "a"), ("10.20.0.0/16", "b"), ("81.2.69.0/24", "lab"), ("2001:218::/32", "tokyo")
            ),
        )
    )
    assert locator.locate(ip("10.20.3.4")) == Location("b", None, None, None, None, 16, "networks")
    a = locator.locate(ip("10.1.2.3"))
    assert (a.region, a.source) == ("a", "networks")
    # 10.0.0.0/12 is the largest network around 10.1.2.3 that 10.20.0.0/16 is not in:
    # a resolver must not reuse "a" for the clients of "b".
    assert a.prefix == 12
    assert locator.locate(ip("81.2.69.142")).region == "lab"  # the database says GB
    assert locator.locate(ip("::ffff:10.20.0.1")).region == "b"
    assert locator.locate(ip("2001:218::1")) == Location("tokyo", None, None, None, None, 32, "networks")


def test_database_scope_excludes_operator_networks_inside_it() -> None:
    plain = Locator(GeoIPConfig(database=CITY)).locate(ip("10.1.2.3"))
    assert (plain.source, plain.prefix) == ("none", 8)  # the database knows nothing in 10.0.0.0/8
    carved = Locator(GeoIPConfig(database=CITY, networks=networks(("10.20.0.0/16", "b"))))
    assert carved.locate(ip("10.1.2.3")) == Location(None, None, None, None, None, 12, "none")
    assert carved.locate(ip("10.20.1.1")).region == "b"


def test_ipv4_mapped_cidrs_are_ipv4_cidrs() -> None:
    locator = Locator(GeoIPConfig(networks=networks(("::ffff:192.0.2.0/120", "mapped"))))
    assert locator.locate(ip("192.0.2.7")).region == "mapped"
    assert locator.locate(ip("192.0.2.7")).prefix == 24


def test_first_listing_of_a_duplicate_cidr_wins() -> None:
    locator = Locator(GeoIPConfig(networks=networks(("10.0.0.0/8", "first"), ("10.0.0.0/8", "second"))))
    assert locator.locate(ip("10.9.9.9")).region == "first"


# -- the cache ---------------------------------------------------------------------------------


def test_cache_serves_a_whole_network_from_one_entry() -> None:
    locator = Locator(GeoIPConfig(database=CITY))
    first = locator.locate(ip("81.2.69.142"))
    assert locator.cache_len() == 1
    assert locator.locate(ip("81.2.69.143")) is first  # same /31: the cached object
    assert locator.cache_len() == 1
    miss = locator.locate(ip("8.8.8.8"))
    net = ipaddress.ip_network(f"8.8.8.8/{miss.prefix}", strict=False)
    for offset in range(0, net.num_addresses, max(1, net.num_addresses // 1000)):
        assert locator.locate(net.network_address + offset) is miss
    assert locator.cache_len() == 2  # not one per address


def test_cache_is_bounded() -> None:
    locator = Locator(GeoIPConfig(database=CITY), cache_size=3)
    for address in ["81.2.69.142", "214.0.0.1", "216.160.83.57", "2001:218::1", "175.16.199.1"]:
        locator.locate(ip(address))
    assert locator.cache_len() == 3
    assert locator.locate(ip("81.2.69.142")).country == "GB"  # evicted, then found again
    assert locator.cache_len() == 3


def test_cache_can_be_off() -> None:
    locator = Locator(GeoIPConfig(database=CITY), cache_size=0)
    assert locator.locate(ip("81.2.69.142")) == locator.locate(ip("81.2.69.142"))
    assert locator.cache_len() == 0


# -- bad databases: rejected at construction ---------------------------------------------------


def reason_for(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        Locator(GeoIPConfig(database=path))
    (problem,) = info.value.problems
    assert problem.source == str(path)
    assert problem.reason.startswith("geoip.database: ")
    return problem.reason


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in reason_for(tmp_path / "GeoIP2-City.mmdb")


def test_directory(tmp_path: Path) -> None:
    assert "directory" in reason_for(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not a database\n" * 100, METADATA_MARKER + b"\x00"])
def test_not_a_database(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.mmdb"
    path.write_bytes(content)
    assert "not a valid MaxMind DB file" in reason_for(path)


def test_broken_double_is_found_before_any_query() -> None:
    assert "double of 5 bytes" in reason_for(BROKEN_DOUBLE)


def test_invalid_node_count() -> None:
    assert "search tree extends past the end" in reason_for(BAD_NODE_COUNT)


def test_asn_database_is_rejected() -> None:
    reason = reason_for(ASN)
    assert "'GeoLite2-ASN'" in reason and "City or Country" in reason


# -- small databases made here: record sizes, damage the test files do not have ---------------


def _ctrl(kind: int, size: int) -> bytes:
    if size < 29:
        first, extra = size, b""
    elif size < 285:
        first, extra = 29, bytes([size - 29])
    elif size < 65821:
        first, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        first, extra = 31, (size - 65821).to_bytes(3, "big")
    if kind <= 7:
        return bytes([kind << 5 | first]) + extra
    return bytes([first, kind - 7]) + extra


class _Int:
    """An unsigned integer of a given MaxMind type (5 uint16, 6 uint32, 9 uint64)."""

    def __init__(self, kind: int, value: int) -> None:
        self.kind, self.value = kind, value


def _encode(value: object) -> bytes:
    """MaxMind DB data-section encoding of a Python value, without pointers."""
    if isinstance(value, bytes):  # pre-encoded, possibly deliberately wrong
        return value
    if isinstance(value, dict):
        return _ctrl(7, len(value)) + b"".join(_encode(k) + _encode(v) for k, v in value.items())
    if isinstance(value, list):
        return _ctrl(11, len(value)) + b"".join(_encode(v) for v in value)
    if isinstance(value, str):
        raw = value.encode()
        return _ctrl(2, len(raw)) + raw
    if isinstance(value, float):
        return _ctrl(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        value = _Int(6 if value < 2**32 else 9, value)
    if isinstance(value, _Int):
        raw = value.value.to_bytes((value.value.bit_length() + 7) // 8, "big")
        return _ctrl(value.kind, len(raw)) + raw
    raise TypeError(value)


def _pointer(offset: int) -> bytes:
    if offset < 2048:
        return bytes([0x20 | offset >> 8, offset & 0xFF])
    if offset < 526336:
        offset -= 2048
        return bytes([0x28 | offset >> 16]) + (offset & 0xFFFF).to_bytes(2, "big")
    offset -= 526336
    return bytes([0x30 | offset >> 24]) + (offset & 0xFFFFFF).to_bytes(3, "big")


def _write(value: object, data: bytearray, seen: dict[bytes, int], top: bool = False) -> int:
    """Append ``value`` to the data section as real writers do: a value written before
    (a string, a map) becomes a pointer to it.  Returns where the value starts."""
    plain = _encode(value)
    if not isinstance(value, bytes) and len(plain) > 3 and plain in seen:
        if top:
            return seen[plain]  # the tree points at the earlier record
        data += _pointer(seen[plain])
        return -1
    start = len(data)
    if isinstance(value, dict):
        data += _ctrl(7, len(value))
        for key, item in value.items():
            _write(key, data, seen)
            _write(item, data, seen)
    elif isinstance(value, list):
        data += _ctrl(11, len(value))
        for item in value:
            _write(item, data, seen)
    else:
        data += plain
    if not isinstance(value, bytes):
        seen.setdefault(plain, start)
    return start


def build_mmdb(entries: list[tuple[str, object]], record_size: int = 28, database_type: str = "Test-City") -> bytes:
    """An IPv4 MaxMind DB holding ``entries`` (non-overlapping CIDR -> record)."""
    data, seen = bytearray(), {}
    root: list = [None, None]
    for cidr, record in entries:
        net = ipaddress.IPv4Network(cidr)
        offset = _write(record, data, seen, top=True)
        node, value = root, int(net.network_address)
        for depth in range(net.prefixlen):
            bit = value >> (31 - depth) & 1
            if depth == net.prefixlen - 1:
                node[bit] = ("data", offset)
            else:
                if node[bit] is None:
                    node[bit] = [None, None]
                node = node[bit]
    order, queue = [], [root]
    while queue:
        node = queue.pop(0)
        order.append(node)
        queue += [child for child in node if isinstance(child, list)]
    number = {id(node): i for i, node in enumerate(order)}
    count = len(order)

    def record_value(child: object) -> int:
        if child is None:
            return count
        if isinstance(child, list):
            return number[id(child)]
        return count + 16 + child[1]

    tree = bytearray()
    for node in order:
        left, right = (record_value(child) for child in node)
        if record_size == 24:
            tree += left.to_bytes(3, "big") + right.to_bytes(3, "big")
        elif record_size == 32:
            tree += left.to_bytes(4, "big") + right.to_bytes(4, "big")
        else:
            tree += (left & 0xFFFFFF).to_bytes(3, "big")
            tree.append((left >> 24) << 4 | right >> 24)
            tree += (right & 0xFFFFFF).to_bytes(3, "big")
    metadata = {
        "binary_format_major_version": _Int(5, 2),
        "binary_format_minor_version": _Int(5, 0),
        "build_epoch": _Int(9, 1),
        "database_type": database_type,
        "description": {"en": "test"},
        "ip_version": _Int(5, 4),
        "languages": ["en"],
        "node_count": _Int(6, count),
        "record_size": _Int(5, record_size),
    }
    return bytes(tree) + bytes(16) + bytes(data) + METADATA_MARKER + _encode(metadata)


def place(country: str, continent: str, lat: float, lon: float) -> dict:
    return {
        "country": {"iso_code": country, "names": {"en": country}},
        "continent": {"code": continent},
        "location": {"latitude": lat, "longitude": lon},
    }


@pytest.mark.parametrize("record_size", [24, 28, 32])
@pytest.mark.parametrize("native", [True, False])
def test_record_sizes(tmp_path: Path, record_size: int, native: bool) -> None:
    path = tmp_path / "made.mmdb"
    path.write_bytes(
        build_mmdb(
            [
                ("198.51.100.0/24", place("FR", "EU", 48.85, 2.35)),
                ("203.0.113.128/25", place("AU", "OC", -33.9, 151.2)),
                ("203.0.113.0/26", place("NZ", "OC", -36.8, 174.8)),
            ],
            record_size,
        )
    )
    locator = Locator(GeoIPConfig(database=path), native=native)
    assert locator.reader_mode == ("native" if native else "memory")
    fr = locator.locate(ip("198.51.100.9"))
    assert (fr.country, fr.continent, fr.lat, fr.prefix) == ("FR", "EU", 48.85, 24)
    assert locator.locate(ip("203.0.113.200")).country == "AU"
    assert locator.locate(ip("203.0.113.5")).prefix == 26
    assert locator.locate(ip("203.0.113.70")).source == "none"
    # an IPv4-only database knows nothing of IPv6: that answer holds for all of IPv6
    assert locator.locate(ip("2001:db8::1")) == UNKNOWN


# Raw bytes stand for values the encoder would never write (first byte: type << 5 | size).
@pytest.mark.parametrize(
    "record, reason",
    [
        ("just a string", "not a map"),
        ({"country": {"iso_code": bytes([0x42, 0xFF, 0xFE])}}, "not UTF-8"),
        ({"location": {"latitude": bytes([0x64]) + bytes(4)}}, "double of 4 bytes"),
        ({"country": bytes([0x27, 0xFF])}, "pointer points past the data section"),
        ({"city": bytes([0x42]) + b"x"}, "a value runs past the data section"),
        ({"n": bytes([0x00, 0x06])}, "unknown data type 13"),
        ({"n": bytes([0xC5]) + bytes(5)}, "an integer of 5 bytes"),
        ({bytes([0xC1, 0x01]): "key"}, "a map key of type 6"),
        # {"a": <pointer to offset 7>, "b": <pointer to offset 0>}: offset 7 holds a pointer
        (bytes([0xE2, 0x41, 0x61, 0x20, 0x07, 0x41, 0x62, 0x20, 0x00]), "points at another pointer"),
        # {<pointer to offset 0>: "v"}: a key that is the map itself
        (bytes([0xE1, 0x20, 0x00, 0x41, 0x76]), "a map key points at a non-string"),
    ],
)
def test_damaged_records_are_rejected(tmp_path: Path, record: object, reason: str) -> None:
    path = tmp_path / "bad.mmdb"
    path.write_bytes(build_mmdb([("198.51.100.0/24", record)]))
    assert reason in reason_for(path)


def test_damage_found_late_without_verify(tmp_path: Path) -> None:
    """verify=False trusts the file: the damaged record costs the query that reaches it, not the server."""
    path = tmp_path / "bad.mmdb"
    path.write_bytes(
        build_mmdb(
            [
                ("198.51.100.0/24", {"location": {"latitude": bytes([0x64]) + bytes(4)}}),
                ("203.0.113.0/24", place("AU", "OC", -33.9, 151.2)),
            ]
        )
    )
    for native in (True, False):
        locator = Locator(GeoIPConfig(database=path), verify=False, native=native)
        loc = locator.locate(ip("198.51.100.1"))
        assert (loc.source, loc.prefix) == ("none", 32)  # claims nothing beyond this address
        assert locator.errors == 1 and locator.cache_len() == 0
        assert locator.locate(ip("203.0.113.1")).country == "AU"


def test_large_file_with_long_pointers(tmp_path: Path) -> None:
    """Past 512 KiB of data, pointers take 3 bytes; every width must decode like maxminddb's."""
    filler = [(f"10.{i >> 8}.{i & 255}.0/24", {"pad": f"{i:05d}" + "x" * 1000}) for i in range(600)]
    late = [(f"172.16.{i}.0/24", place("DE", "EU", 50.1, 8.7) | {"seq": i}) for i in range(3)]
    path = tmp_path / "big.mmdb"
    path.write_bytes(build_mmdb(filler + late))
    assert path.stat().st_size > 600_000
    for native in (True, False):
        locator = Locator(GeoIPConfig(database=path), native=native)
        assert locator.locate(ip("172.16.2.9")).country == "DE"


# -- properties --------------------------------------------------------------------------------

NESTED = networks(
    ("81.2.69.128/26", "lab"),
    ("8.8.8.0/24", "dns"),
    ("10.0.0.0/8", "a"),
    ("10.20.0.0/16", "b"),
    ("10.20.30.0/24", "c"),
    ("2001:218:0:1::/64", "jp-lab"),
)
PROPERTY_LOCATOR = Locator(GeoIPConfig(database=CITY, networks=NESTED))
UNCACHED = Locator(GeoIPConfig(database=CITY, networks=NESTED), cache_size=0)

# Random addresses, half of them near the networks that the data and the CIDRs carve up.
ipv4 = st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0x51024500, 0x08080800, 0x0A140000, 0xD6000000, 0xD8A05300]).flatmap(
        lambda base: st.integers(base, base + 0xFFFF)
    ),
)


@settings(max_examples=400, deadline=None)
@given(ipv4)
def test_locate_never_raises_and_prefix_is_in_range(value: int) -> None:
    loc = PROPERTY_LOCATOR.locate(ipaddress.IPv4Address(value))
    assert 0 <= loc.prefix <= 32
    assert loc.source in ("networks", "geoip", "none")
    assert (loc.region is not None) == (loc.source == "networks")


# Addresses where the answer changes: starts of the CIDRs and of some database networks.
EDGES = [int(entry.network.network_address) for entry in NESTED if entry.network.version == 4] + [
    int(ip(a))
    for a in (
        "81.2.69.142",
        "81.2.69.144",
        "81.2.69.160",
        "214.0.0.0",
        "214.0.1.0",
        "216.160.83.56",
        "216.160.83.64",
        "10.20.30.255",
        "8.8.9.0",
    )
]


@settings(max_examples=300, deadline=None)
@given(ipv4, st.integers(0, 2**32 - 1))
def test_every_address_in_the_scope_gets_the_same_answer(value: int, other: int) -> None:
    """The ECS promise: the answer holds for the whole network /prefix, so a resolver may reuse it."""
    loc = UNCACHED.locate(ipaddress.IPv4Address(value))
    host_bits = 32 - loc.prefix
    network = value >> host_bits << host_bits
    siblings = [network | (other & ((1 << host_bits) - 1))]
    siblings += [edge for edge in EDGES if edge >> host_bits << host_bits == network]
    for sibling in siblings:
        assert UNCACHED.locate(ipaddress.IPv4Address(sibling)) == loc, ipaddress.IPv4Address(sibling)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**128 - 1))
def test_ipv6_never_raises(value: int) -> None:
    assert 0 <= PROPERTY_LOCATOR.locate(ipaddress.IPv6Address(value)).prefix <= 128


# -- distance ----------------------------------------------------------------------------------


def test_london_to_singapore() -> None:
    assert great_circle_km(51.5074, -0.1278, 1.3521, 103.8198) == pytest.approx(10_880, abs=50)


def test_distance_basics() -> None:
    assert great_circle_km(10.0, 20.0, 10.0, 20.0) == 0.0
    assert great_circle_km(0, 0, 0, 180) == pytest.approx(6371.0088 * 3.141592653589793)
    assert great_circle_km(1, 2, 3, 4) == great_circle_km(3, 4, 1, 2)
