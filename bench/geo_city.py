"""The geo workloads of issue 15 on a real City database (GeoLite2 City 2018, the `maxminddb-geolite2`
package of the `test` extra): geodns `[healthy, geo, weighted]` against gdnsd's geoip plugin with the
same three datacenters and `auto_dc_coords`, each pinned to one core, dnsperf on the other.

(a) 10k located /24s (IPv4) or /56s (IPv6), cycled: a warm server;
(b) 1M distinct located networks, each asked about once (dnsperf -n 1): first sight; for IPv4 also
    with every name in a random case, as a 0x20 resolver (Google Public DNS) asks;
scope: for 2,000 sampled networks, whether geodns's ECS scope is at least as wide as gdnsd's, and of
    the narrower ones, how many stop where gdnsd's network holds addresses the database does not locate
    (geodns runs with `geoip.unlocated` naming gdnsd's first datacenter, which is where gdnsd sends
    the clients its database does not place, so both answer those alike);
flood: the steady set's answer rate with and without a random-ECS flood at half geodns's (b) rate;
workers: (a) and (b) with `workers: auto` on both cores against gdnsd with two UDP threads (dnsperf shares);
start-up: the City database and 10,000 GSLB records, from an empty cache: answering, areas compiled,
    and the peak RSS of the whole process tree meanwhile.

CPU and RSS are the server's whole process tree (``Server.cpu_seconds``, ``rss_mb``).

"Located" networks are picked from geodns's own compiled areas (geo/compile.py), so both servers
get the same inputs; a network is located when the database gives it a country or coordinates.
"""

from __future__ import annotations

import ipaddress
import os
import random
import struct
import subprocess
import time
from bisect import bisect_right
from pathlib import Path

import dns.edns
import dns.exception
import dns.message
import dns.query

from bench import (
    CLUSTERS,
    REGIONS,
    ZONE,
    Result,
    Server,
    _per_cpu,
    dnsperf,
    free_port,
    taking_turns,
    zone_text,
)

SAMPLE = 2000


def city_db() -> Path | None:
    try:
        import _maxminddb_geolite2  # the maxminddb-geolite2 package: bench/test only
    except ImportError:
        return None
    return Path(_maxminddb_geolite2.__file__).parent / "GeoLite2-City.mmdb"


def _regions():
    from geodns.config.model import Region

    return {
        name: Region(name, float(lat), float(lon), cont, tuple(c.strip() for c in countries.strip("[]").split(",")))
        for name, (lat, lon, cont, countries) in REGIONS.items()
    }


def located_networks(db: Path, cache: Path, version: int, count: int, seed: int) -> list[int]:
    """``count`` distinct located networks (/24 for IPv4, /56 for IPv6) as integers, in random order."""
    from geodns.geo import compile as compiled

    regions = _regions()
    name = compiled.digest(db.read_bytes(), [], regions)
    out = cache / f"areas-{name}.npz"
    if not out.exists():
        compiled.build_file(db, [], regions, out)
    table = compiled.load(out)
    starts, ids = (table.v4_starts, table.v4_ids) if version == 4 else (table.v6_starts, table.v6_ids)
    bits, keep = (32, 24) if version == 4 else (128, 56)
    shift = bits - keep
    top = 1 << bits
    located = {i for i, area in enumerate(table.areas) if area.source == "area"}
    runs = [
        (starts[i] >> shift, ((starts[i + 1] if i + 1 < len(starts) else top) - 1) >> shift)
        for i in range(len(starts))
        if ids[i] in located
    ]
    weights = [hi - lo + 1 for lo, hi in runs]
    rng = random.Random(seed)
    chosen: set[int] = set()
    while len(chosen) < count:
        for lo, hi in rng.choices(runs, weights, k=count):
            chosen.add(rng.randint(lo, hi))
    picked = list(chosen)[:count]
    rng.shuffle(picked)
    return picked


def ecs_message(qid: int, network: int, version: int, rng: random.Random | None = None) -> bytes:
    """An A query for the record with a /24 or /56 Client Subnet; with ``rng``, each letter of the
    name in a case drawn at random, as a 0x20 resolver (Google Public DNS) asks."""
    name = f"app.{ZONE}"
    if rng is not None:
        name = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
    qname = b"".join(bytes((len(p),)) + p.encode() for p in name.split(".")) + b"\0"
    if version == 4:
        family, source, address = 1, 24, network.to_bytes(3, "big")
    else:
        family, source, address = 2, 56, network.to_bytes(7, "big")
    option = struct.pack("!HHHBB", 8, 4 + len(address), family, source, 0) + address
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(option)) + option
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1) + qname + struct.pack("!HH", 1, 1) + opt


def write_file(path: Path, networks: list[int], version: int, rng: random.Random | None = None) -> Path:
    data = bytearray()
    for i, network in enumerate(networks):
        message = ecs_message(i & 0xFFFF, network, version, rng)
        data += struct.pack("!H", len(message)) + message
    path.write_bytes(bytes(data))
    return path


def geodns_config(work: Path, port: int, db: Path, workers: str = "1") -> Path:
    zone = work / f"{ZONE}.zone"
    zone.write_text(f"$ORIGIN {ZONE}.\n" + zone_text())
    regions = "".join(
        f"  {r}: {{lat: {a}, lon: {b}, continent: {c}, countries: {d}}}\n" for r, (a, b, c, d) in REGIONS.items()
    )
    clusters = "".join(f'  {r}-1: {{region: {r}, endpoints: ["{ip}"], weight: 100}}\n' for r, ip in CLUSTERS.items())
    cfg = work / f"geodns-city-{workers}.yaml"
    cfg.write_text(f"""server: {{dns_listen: ["127.0.0.1:{port}"], http_listen: null, workers: {workers}}}
store: "memory://"
checker: {{embedded: off}}
zones: ["{zone}"]
geoip: {{database: "{db}", unlocated: {next(iter(REGIONS))}}}
regions:
{regions}clusters:
{clusters}records:
  app.{ZONE}: {{ttl: 30, clusters: [us-1, eu-1, ap-1], policy: [healthy, geo, weighted]}}
""")
    return cfg


def gdnsd_dir(work: Path, port: int, db: Path, threads: int = 1) -> Path:
    d = work / f"gdnsd-geoip-{threads}"
    (d / "zones").mkdir(parents=True, exist_ok=True)
    (d / "zones" / ZONE).write_text(zone_text() + "app 30 DYNA geoip!app\n")
    coords = ", ".join(f"{r} => [{a}, {b}]" for r, (a, b, _c, _d) in REGIONS.items())
    dcmap = ", ".join(f"{r} => {ip}" for r, ip in CLUSTERS.items())
    (
        d / "config"
    ).write_text(f"""options => {{ listen => [ 127.0.0.1:{port} ], udp_threads => {threads}, tcp_threads => 1 }}
plugins => {{ geoip => {{
  maps => {{ prod => {{
    geoip2_db => {db}
    datacenters => [{", ".join(REGIONS)}]
    auto_dc_coords => {{ {coords} }}
  }} }}
  resources => {{ app => {{ map => prod, dcmap => {{ {dcmap} }} }} }}
}} }}
""")
    return d


def scope_of(port: int, network: int, version: int) -> int | None:
    if version == 4:
        address, source = str(ipaddress.IPv4Address(network << 8)), 24
    else:
        address, source = str(ipaddress.IPv6Address(network << 72)), 56
    q = dns.message.make_query(f"app.{ZONE}.", "A", use_edns=0, options=[dns.edns.ECSOption(address, source)])
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
    except (dns.exception.Timeout, OSError):
        return None
    for option in r.options:
        if isinstance(option, dns.edns.ECSOption):
            return option.scopelen
    return None


def wait_for_areas(cache: Path, server: Server, timeout: float = 300) -> tuple[float, float]:
    """Until geodns has compiled (or found) its areas file: (seconds since start, peak RSS of its
    process tree meanwhile, in MB); the bench measures the server it will be."""
    deadline = time.monotonic() + timeout
    peak = server.rss_mb()
    while time.monotonic() < deadline:
        peak = max(peak, server.rss_mb())
        if list(cache.glob("areas-*.npz")):
            ready = time.monotonic() - server.started
            time.sleep(1.0)  # the server loads it (well under a second)
            return ready, max(peak, server.rss_mb())
        time.sleep(0.1)
    raise RuntimeError("geodns did not compile its areas")


def with_records(config: Path, count: int) -> Path:
    """``config`` with ``count`` GSLB records in all (app and app1..), as the issue's start-up bar asks."""
    extra = "".join(
        f"  app{i}.{ZONE}: {{ttl: 30, clusters: [us-1, eu-1, ap-1], policy: [healthy, geo, weighted]}}\n"
        for i in range(1, count)
    )
    out = config.with_name(config.stem + f"-{count}.yaml")
    out.write_text(config.read_text() + extra)
    return out


def unlocated_inside(table, version: int, network: int, prefix: int) -> bool:
    """Whether the network of ``prefix`` bits around ``network`` (a /24 or /56 number) holds addresses
    the database does not locate: without ``geoip.unlocated`` geodns answers those with every
    cluster (``geo`` keeps all candidates for an unknown client), gdnsd with its first datacenter,
    so a scope spanning them would be wider than geodns's answer holds."""
    bits, keep = (32, 24) if version == 4 else (128, 56)
    starts, ids = (table.v4_starts, table.v4_ids) if version == 4 else (table.v6_starts, table.v6_ids)
    host = bits - prefix
    lo = (network << (bits - keep)) >> host << host
    hi = lo + (1 << host) - 1
    i = max(bisect_right(starts, lo) - 1, 0)
    while i < len(starts) and starts[i] <= hi:
        if ids[i] >= 0 and table.areas[ids[i]].source == "none":
            return True
        i += 1
    return False


def run(
    work: Path, seconds: float, server_core: str | None, client_core: str | None, geodns: list[str], rounds: int = 3
) -> None:
    db = city_db()
    if db is None:
        print("geo (City): skipped: pip install maxminddb-geolite2 (the test extra) for GeoLite2 City")
        return
    cache = work / "cache"
    cache.mkdir(exist_ok=True)
    env = {**os.environ, "GEODNS_CACHE_DIR": str(cache)}
    print(f"geo on GeoLite2 City 2018 ({db.stat().st_size >> 20} MB): [healthy, geo, weighted] vs gdnsd geoip")
    files = {}
    for version in (4, 6):
        warm = located_networks(db, cache, version, 10_000, seed=version)
        first = located_networks(db, cache, version, 1_000_000, seed=10 + version)
        files[version] = (
            write_file(work / f"city-a-v{version}.bin", warm, version),
            write_file(work / f"city-b-v{version}.bin", first, version),
            first[:SAMPLE],
        )
    mixed_case = write_file(
        work / "city-b-v4-0x20.bin", located_networks(db, cache, 4, 1_000_000, 20), 4, random.Random(20)
    )
    from geodns.geo import compile as compiled

    (ours_file,) = cache.glob("areas-*.npz")
    table = compiled.load(ours_file)  # the bench's own compile, for the scope classification
    for old in cache.glob("areas-*"):
        old.unlink()  # geodns compiles its own, timed below

    port = free_port()
    cfg = with_records(geodns_config(work, port, db), 10_000)
    ge = Server("geodns", geodns + ["--log-level", "warning", "serve", "--config", str(cfg)], port, None, env=env)
    try:
        ready, peak = wait_for_areas(cache, ge)
        print(
            f"  start-up, City DB + 10,000 GSLB records: answering after {ge.ready_after:.1f} s (target 10 s),"
            f" areas compiled after {ready:.1f} s; RSS of all processes: peak {peak:.0f} MB while compiling"
            f" (target 600 MB), {ge.rss_mb():.0f} MB after"
        )
    finally:
        ge.stop()

    results: dict[tuple[str, str], Result] = {}
    scopes: dict[int, tuple[int, int, int]] = {}

    def measure(server: Server, name: str, path: Path, once: bool, core: str | None = client_core) -> Result:
        cpu = server.cpu_seconds()
        started = time.monotonic()
        qps, avg, lost, _ = dnsperf(server.port, path, True, seconds, core, once=once)
        spent = time.monotonic() - started
        r = Result(server.name, name, qps, avg, lost, None, 100 * (server.cpu_seconds() - cpu) / spent)
        print(f"  {r.server:7} {name:34} {qps:>10,.0f} q/s  server cpu {r.cpu_pct:3.0f}%  loss {lost:.2f}%")
        return r

    def in_turns(servers: list[Server], key: str, name: str, path: Path, once: bool, core: str | None) -> None:
        """``bench.taking_turns``: the median run of each server goes into ``results``."""
        kept = taking_turns(servers, rounds, lambda server: measure(server, name, path, once, core))
        for server, (_, median) in zip(servers, kept):
            results[server.name, key] = median

    port = free_port()
    gd = Server("gdnsd", ["gdnsd", "-c", str(gdnsd_dir(work, port, db)), "-f", "start"], port, server_core)
    try:
        port = free_port()
        ge = Server(
            "geodns",
            geodns + ["--log-level", "warning", "serve", "--config", str(geodns_config(work, port, db))],
            port,
            server_core,
            env=env,
        )
        try:
            wait_for_areas(cache, ge)  # compiled above: loaded at once
            for version in (4, 6):
                a, b, sample = files[version]
                dnsperf(ge.port, a, True, 1, client_core)  # warm: (a) is the warm server's workload
                in_turns([gd, ge], f"a{version}", f"(a) 10k located, cycled, IPv{version}", a, False, client_core)
                # (b) again: geodns remembers a network only on its second sighting, and its doorkeeper
                # holds the last 131,072 of 1M, so each pass is first sight for nearly every network.
                in_turns([gd, ge], f"b{version}", f"(b) 1M distinct once, IPv{version}", b, True, client_core)
                if version == 4:  # the same from a 0x20 resolver: every name in a random case
                    in_turns([gd, ge], "b4x", "(b) 1M distinct once, IPv4, 0x20", mixed_case, True, client_core)
                wide = narrower_unlocated = total = 0
                for network in sample:
                    g, o = scope_of(gd.port, network, version), scope_of(ge.port, network, version)
                    if g is None or o is None:
                        continue
                    total += 1
                    if o <= g:
                        wide += 1
                    elif unlocated_inside(table, version, network, g):
                        narrower_unlocated += 1
                scopes[version] = (wide, narrower_unlocated, total)
            flood(ge, files[4][1], results["geodns", "b4"].qps / 2, files[4][0], seconds, client_core)
        finally:
            ge.stop()
    finally:
        gd.stop()

    # Item 6: both cores.  geodns with ``workers: auto`` (one per core), gdnsd with two UDP threads;
    # dnsperf is not pinned and shares the cores with the server.
    port = free_port()
    gd = Server("gdnsd", ["gdnsd", "-c", str(gdnsd_dir(work, port, db, threads=2)), "-f", "start"], port, None)
    try:
        port = free_port()
        cfg = geodns_config(work, port, db, workers="auto")
        ge = Server("geodns", geodns + ["--log-level", "warning", "serve", "--config", str(cfg)], port, None, env=env)
        try:
            wait_for_areas(cache, ge)
            a, b, _ = files[4]
            dnsperf(ge.port, a, True, 1, None)
            in_turns([gd, ge], "a4w", "(a) both cores, IPv4", a, False, None)
            in_turns([gd, ge], "b4w", "(b) both cores, IPv4", b, True, None)
            print(f"  geodns workers: auto: RSS of all processes {ge.rss_mb():.0f} MB (PSS {ge.rss_mb('Pss'):.0f} MB)")
        finally:
            ge.stop()
    finally:
        gd.stop()

    print("  workload                               gdnsd q/s  geodns q/s  ratio  per-CPU ratio  target")
    for key, label, target in (
        ("a4", "(a) 10k /24s cycled, IPv4", "0.8"),
        ("a6", "(a) 10k /56s cycled, IPv6", "0.8"),
        ("b4", "(b) 1M /24s once, IPv4", "0.5"),
        ("b6", "(b) 1M /56s once, IPv6", "0.5"),
        ("b4x", "(b) IPv4, 0x20 names (random case)", "-"),
        ("a4w", "(a) IPv4, both cores (dnsperf shares)", "-"),
        ("b4w", "(b) IPv4, both cores (dnsperf shares)", "-"),
    ):
        g, o = results["gdnsd", key], results["geodns", key]
        print(
            f"  {label:36} {g.qps:>10,.0f} {o.qps:>11,.0f}  {o.qps / g.qps:5.2f}  {_per_cpu(o) / _per_cpu(g):13.2f}"
            f"  {'>= ' + target if target != '-' else ''}"
        )
    for version, (wide, unlocated, total) in scopes.items():
        print(
            f"  scope at least as wide as gdnsd's, IPv{version}: {wide}/{total} = {100 * wide / max(total, 1):.1f} %"
            f" (target >= 90 %); of the narrower, {unlocated} stop where gdnsd's wider network holds"
            f" addresses the database does not locate ({100 * (wide + unlocated) / max(total, 1):.1f} % with them)"
        )


def flood(server: Server, flood_file: Path, rate: float, steady_file: Path, seconds: float, core: str | None) -> None:
    """The steady set (100 fixed networks at 2,000 q/s) alone, then under a random-ECS flood at ``rate``."""
    steady = steady_file.with_name("steady.bin")
    data = steady_file.read_bytes()
    # The first 100 messages of the (a) file: 100 fixed networks.
    pos, out = 0, bytearray()
    for _ in range(100):
        (length,) = struct.unpack_from("!H", data, pos)
        out += data[pos : pos + 2 + length]
        pos += 2 + length
    steady.write_bytes(bytes(out))
    alone = dnsperf(server.port, steady, True, seconds, core, max_qps=2000)[0]
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(server.port), "-d", str(flood_file), "-B"]
    argv += ["-l", str(seconds + 2), "-c", "8", "-q", "256", "-Q", str(int(rate))]
    flooding = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        under = dnsperf(server.port, steady, True, seconds, core, max_qps=2000)[0]
    finally:
        flooding.wait(seconds + 30)
    print(
        f"  flood at {rate:,.0f} q/s (half of (b)): steady set {alone:,.0f} q/s alone, {under:,.0f} q/s under the flood"
        f" ({under / max(alone, 1):.2f}; target >= 0.5); its memo hits are checked by tests/test_flood.py"
    )
