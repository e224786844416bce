"""Compiled areas (geo/areas.py, compile.py, netmap.py): first sight is one look-up, and the ECS
scope it gives is one the answer really holds for."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from geodns.config.model import GeoIPConfig, GeoNetwork, Region
from geodns.errors import ConfigError
from geodns.geo import Locator
from geodns.geo.netmap import widest
from geodns.gslb.policy import Client, select
from geodns.process.server import Settings, build_engine
from tests.dnsserver import write

DATA = Path(__file__).resolve().parent / "data"
DB = DATA / "geo" / "GeoIP2-City-Test.mmdb"
REGIONS = {
    "us": Region("us", 39.0, -77.5, "NA", ("US",)),
    "eu": Region("eu", 53.3, -6.3, "EU", ("GB",)),
    "ap": Region("ap", 1.35, 103.8, "AS", ("SG",)),
}


@given(bits=st.sampled_from([32, 128]), data=st.data())
@settings(max_examples=500)
@seed(15)
def test_widest_is_the_shortest_prefix_inside_the_run(bits, data):
    lo = data.draw(st.integers(0, (1 << bits) - 1))
    hi = data.draw(st.integers(lo, (1 << bits) - 1))
    value = data.draw(st.integers(lo, hi))
    expected = bits
    for length in range(bits, -1, -1):  # the plain loop: widen while the network stays inside
        m = bits - length
        if value >> m << m >= lo and value | ((1 << m) - 1) <= hi:
            expected = length
        else:
            break
    assert widest(value, lo, hi, bits) == expected


_ENGINE: dict = {}


def _engine(tmp_path_factory, unlocated: str | None = None):
    """A GSLB record whose answer depends on geo only, over the test database plus operator networks
    that cut its networks into pieces (so scopes have edges to get wrong); ``unlocated``: the
    region of the addresses the database does not place (``geoip.unlocated``)."""
    if unlocated not in _ENGINE:
        tmp = tmp_path_factory.mktemp("areas")
        zone = write(
            tmp / "z.zone", "$ORIGIN gslb.example.com.\n@ 60 IN SOA ns h 1 2 3 4 60\n@ IN NS ns\nns IN A 192.0.2.53\n"
        )
        config = write(
            tmp / "c.yaml",
            f"""
zones: ["{zone}"]
geoip:
  database: "{DB}"
  unlocated: {unlocated or "null"}
  networks:
    - {{cidr: "81.2.69.160/28", region: ap}}
    - {{cidr: "81.2.69.168/30", region: us}}
    - {{cidr: "2.125.160.0/20", region: us}}
    - {{cidr: "2001:218:8000::/33", region: eu}}
    - {{cidr: "10.0.0.0/9", region: us}}
    - {{cidr: "10.128.0.0/9", region: us}}
regions:
  us: {{lat: 39.0, lon: -77.5, continent: NA, countries: [US]}}
  eu: {{lat: 53.3, lon: -6.3,  continent: EU, countries: [GB]}}
  ap: {{lat: 1.35, lon: 103.8, continent: AS, countries: [SG]}}
clusters:
  us-1: {{region: us, endpoints: ["192.0.2.10", "2001:db8::10"]}}
  eu-1: {{region: eu, endpoints: ["198.51.100.10", "2001:db8:1::10"]}}
  ap-1: {{region: ap, endpoints: ["203.0.113.10", "2001:db8:2::10"]}}
records:
  app.gslb.example.com: {{clusters: [us-1, eu-1, ap-1], policy: [healthy, geo], answers: 3}}
""",
        )
        engine = build_engine(Settings(config_path=config).load())
        locator = engine.responder.locator
        assert locator.areas_ready.wait(120) and locator.areas is not None
        _ENGINE[unlocated] = engine
    return _ENGINE[unlocated]


# Addresses near the test database's networks and the operator networks above, and anywhere at all.
_V4 = st.one_of(
    st.sampled_from(
        [
            "10.127.255.255",
            "81.2.69.142",
            "81.2.69.165",
            "81.2.69.170",
            "2.125.160.216",
            "216.160.83.56",
            "89.160.20.112",
        ]
    ),
    st.integers(0, (1 << 32) - 1).map(lambda v: str(ipaddress.IPv4Address(v))),
)
_V6 = st.one_of(
    st.sampled_from(["2001:218::", "2001:218:8000::1", "2001:480::", "2a02:cf40::", "::ffff:81.2.69.142"]),
    st.integers(0, (1 << 128) - 1).map(lambda v: str(ipaddress.IPv6Address(v))),
)


@pytest.mark.parametrize("unlocated", [None, "us"], ids=["unlocated-nowhere", "unlocated-us"])
@given(address=st.one_of(_V4, _V6), data=st.data())
@settings(max_examples=400, deadline=None)
@seed(15)
def test_every_address_in_the_scope_gets_the_same_answer(tmp_path_factory, unlocated, address, data):
    """The property of issue 15 item 2: the answer for any address inside the returned scope, located
    exactly (the database record and operator network of that address itself), is the same set;
    with clients the database does not place taken to be in a region too."""
    from geodns.dns.names import from_text

    responder = _engine(tmp_path_factory, unlocated).responder
    locator = responder.locator
    context = responder.live.contexts[from_text("app.gslb.example.com.")]
    ip = ipaddress.ip_address(address)
    bits = 32 if ip.version == 4 else 128
    area = locator.area(ip)
    for family in (4, 6):
        answer = select(context, Client(ip, area, bits), family)
        exact = select(context, Client(ip, locator.locate(ip), bits), family)
        assert set(answer.addresses) == set(exact.addresses)
        assert answer.scope <= bits
        m = bits - answer.scope
        base = int(ip) >> m << m
        for _ in range(6):
            other = ipaddress.ip_address(base + data.draw(st.integers(0, (1 << m) - 1)))
            if other.version != ip.version:  # ip_address turns a small v6 number into v4
                other = ipaddress.IPv6Address(int(other))
            theirs = select(context, Client(other, locator.locate(other), bits), family)
            assert set(theirs.addresses) == set(answer.addresses), (address, answer.scope, str(other), family)


def test_unlocated_clients_take_the_region_named_and_its_wider_scope(tmp_path_factory) -> None:
    """``geoip.unlocated: us``: an address the database does not place is answered as a US client,
    and a US network's scope grows over the unplaced space around it (as gdnsd merges it with its
    first datacenter), where without it the scope stops at the database's edge."""
    from geodns.dns.names import from_text

    name = from_text("app.gslb.example.com.")
    scopes = {}
    for unlocated in (None, "us"):
        responder = _engine(tmp_path_factory, unlocated).responder
        context, locator = responder.live.contexts[name], responder.locator
        nowhere = ipaddress.ip_address("198.18.0.1")  # not in the test database
        answer = select(context, Client(nowhere, locator.area(nowhere), 32), 4)
        clusters = {str(a) for a in answer.addresses}
        assert clusters == ({"192.0.2.10"} if unlocated else {"192.0.2.10", "198.51.100.10", "203.0.113.10"})
        milton = ipaddress.ip_address("216.160.83.56")  # US in the test database
        scopes[unlocated] = select(context, Client(milton, locator.area(milton), 32), 4).scope
        assert responder.explain(name, 1, "198.18.0.1")["client"]["location"]["source"] == (
            "default" if unlocated else "none"
        )
    assert scopes["us"] < scopes[None], scopes


def test_the_compiled_file_is_named_after_geoip_unlocated_too() -> None:
    """A compile with ``geoip.unlocated`` holds other areas than one without: never the same file."""
    from geodns.geo import compile as areas_compile

    plain = areas_compile.digest(b"db", [], REGIONS)
    assert areas_compile.digest(b"db", [], REGIONS, None) == plain  # the name files had before the word
    assert (
        len({plain, areas_compile.digest(b"db", [], REGIONS, "us"), areas_compile.digest(b"db", [], REGIONS, "eu")})
        == 3
    )


def test_areas_wait_for_nothing_without_regions() -> None:
    """A Locator without regions (explain, tools) compiles nothing and answers area() exactly."""
    locator = Locator(GeoIPConfig(DB, (GeoNetwork(ipaddress.ip_network("10.0.0.0/8"), "us"),)))
    assert locator.areas_ready.is_set() and locator.areas is None
    ip = ipaddress.ip_address("81.2.69.142")
    assert locator.area(ip) == locator.locate(ip)


def test_scope_is_wider_than_the_database_network(tmp_path_factory) -> None:
    """Adjacent networks that get one answer share it: the scope spans them, as gdnsd's merge does."""
    locator = _engine(tmp_path_factory).responder.locator
    ip = ipaddress.ip_address("10.1.2.3")  # in 10.0.0.0/9, beside 10.128.0.0/9 of the same region
    assert (locator.locate(ip).prefix, locator.area(ip).prefix) == (9, 8)


def test_a_damaged_database_is_answered_from_and_never_compiled(tmp_path, caplog) -> None:
    """Starting (defer_verify), the whole-file check runs in the compile, off the start-up path:
    the damage is logged as an error naming the file, no areas are made, and every client is
    located per query as without them (the damaged record answers as unknown)."""
    from tests.test_geo import build_mmdb, place

    path = tmp_path / "bad.mmdb"
    path.write_bytes(
        build_mmdb(
            [
                ("198.51.100.0/24", {"location": {"latitude": bytes([0x64]) + bytes(4)}}),
                ("203.0.113.0/24", place("AU", "OC", -33.9, 151.2)),
            ]
        )
    )
    with caplog.at_level("ERROR", logger="geodns.geo.locator"):
        locator = Locator(GeoIPConfig(path), regions=REGIONS, defer_verify=True)
        assert locator.area(ipaddress.ip_address("203.0.113.1")).country == "AU"  # answering meanwhile
        assert locator.areas_ready.wait(120)
    assert locator.areas is None
    (record,) = [r for r in caplog.records if "corrupt MaxMind DB file" in r.getMessage()]
    assert str(path) in record.getMessage() and "double of 4 bytes" in record.getMessage()
    assert locator.area(ipaddress.ip_address("198.51.100.1")).source == "none" and locator.errors == 1
    assert not list(Path(os.environ["GEODNS_CACHE_DIR"]).glob("*.damaged"))
    # Not starting (a reload, tools): checked first, so the file is rejected with its reason.
    with pytest.raises(ConfigError, match="double of 4 bytes"):
        Locator(GeoIPConfig(path), regions=REGIONS)


def test_a_process_forked_before_the_areas_are_ready_gets_them_too() -> None:
    """Workers are forked from the supervisor, maybe while it compiles; fork copies only the forking
    thread, so the worker waits for the same file itself and loads it."""
    networks = (GeoNetwork(ipaddress.ip_network("10.77.0.0/16"), "eu"),)  # a digest no other test has
    locator = Locator(GeoIPConfig(DB, networks), regions=REGIONS)
    pid = os.fork()
    if pid == 0:  # the "worker": exit 0 only if it ends up with areas of its own
        try:
            if not (locator.areas_ready.wait(120) and locator.areas is not None):
                os._exit(1)
            found = locator.area(ipaddress.ip_address("10.77.1.1"))
            os._exit(0 if (found.source, found.prefix) == ("area", 16) else 3)
        except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into pytest
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # 1: no areas in the child, 3: not the network's area
    assert locator.areas_ready.wait(120) and locator.areas is not None


def test_a_database_replaced_while_starting_is_never_compiled_under_the_old_ones_name(tmp_path, caplog) -> None:
    """geoipupdate may rename a new file over the database between the server reading it and the
    compile reading it again.  Compiled then, the new file's areas would be saved under the name of
    the old one's digest, and every later start with the old file would load them: a full-suite run
    answered Singapore's subnet at random that way, after a test had swapped the database.  Now the
    compile checks that it reads the bytes the server located with, and makes nothing if not."""
    import hashlib
    import shutil
    import threading

    from geodns.geo import compile as areas_compile
    from geodns.geo import locator as locator_module

    database = tmp_path / "GeoLite2-City.mmdb"
    shutil.copy(DB, database)
    # Regions no other test has, so no other test can have compiled this file already.
    regions = {**REGIONS, "only-here": Region("only-here", -12.5, 171.25, "OC", ())}
    name = areas_compile.digest(hashlib.sha256(DB.read_bytes()).digest(), [], regions)
    out = locator_module.cache_dir() / f"areas-{name}.npz"
    assert not out.exists()
    # Hold the compile back (its lock) until the file is replaced, as an update at the wrong moment would.
    held = locator_module._COMPILING.setdefault(out, threading.Lock())
    with caplog.at_level("WARNING", logger="geodns.geo.locator"):
        with held:
            locator = Locator(GeoIPConfig(database), regions=regions, defer_verify=True)
            replacement = tmp_path / "download.tmp"
            shutil.copy(DATA / "geo" / "GeoIP2-Country-Test.mmdb", replacement)
            os.replace(replacement, database)
        assert locator.areas_ready.wait(120)
    assert locator.areas is None and not out.exists()
    assert any("changed while starting" in r.getMessage() for r in caplog.records), caplog.text
    # Still answering from the bytes it read: Singapore, located per query.
    assert locator.area(ipaddress.ip_address("214.0.0.1")).country == "SG"


def test_the_compile_refuses_bytes_other_than_the_ones_named(tmp_path) -> None:
    import hashlib

    from geodns.geo import compile as areas_compile

    out = tmp_path / "areas.npz"
    expect = hashlib.sha256(DB.read_bytes()).digest()
    with pytest.raises(SystemExit) as exited:
        areas_compile.build_file(DATA / "geo" / "GeoIP2-Country-Test.mmdb", [], REGIONS, out, expect=expect)
    assert exited.value.code == areas_compile.CHANGED and not out.exists()
    areas_compile.build_file(DB, [], REGIONS, out, expect=expect)
    assert out.exists()
