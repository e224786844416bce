"""/metrics over real HTTP, parsed with prometheus-client's parser, moving as real DNS queries arrive."""

from __future__ import annotations

import platform
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from geodns.process.server import Settings
from geodns.state.model import Observation
from tests.dnsserver import RunningServer, write
from tests.scrape import Samples, parse
from tests.test_gslb_dns import LONDON, addresses, ask, config_text
from tests.test_http_api import http, start_server

ZONE = "gslb.example.com"


def scrape(server: RunningServer) -> Samples:
    status, text = http(server, "GET", "/metrics")
    assert status == 200
    return parse(text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    text = config_text(tmp).replace("http_listen: null", 'http_listen: "127.0.0.1:0"')
    with open(tmp / "gslb.example.com.zone", "a") as zone:  # an RRset too big for 512 octets
        zone.writelines(f"big IN A 192.0.2.{i}\n" for i in range(1, 60))
    running = RunningServer(Settings(config_path=write(tmp / "geodns.yaml", text)))
    yield running
    running.stop()


def udp(server, name, rdtype="A", **kw):
    return dns.query.udp(dns.message.make_query(name, rdtype, **kw), server.host, port=server.port, timeout=3)


def test_query_counters_move_with_real_queries(server):
    before = scrape(server)
    for _ in range(3):
        assert addresses(ask(server, LONDON, 32)) == {"198.51.100.10"}  # ECS, GSLB, eu-west-1
    ask(server, None)  # no ECS: 127.0.0.1 is nowhere
    tcp = dns.query.tcp(dns.message.make_query(f"ns1.{ZONE}.", "A"), server.host, port=server.port, timeout=3)
    assert tcp.answer
    assert udp(server, f"nothing.{ZONE}.").rcode() == dns.rcode.NXDOMAIN
    assert udp(server, "www.example.org.").rcode() == dns.rcode.REFUSED
    assert udp(server, f"big.{ZONE}.").flags & dns.flags.TC  # no EDNS: 512 octets, truncated
    udp(server, f"ns1.{ZONE}.", 65280)  # a private type: counted as "other"
    after = scrape(server)

    q = "geodns_queries_total"
    assert moved(before, after, q, zone=ZONE, qtype="A", rcode="NOERROR", transport="udp") == 5
    assert moved(before, after, q, zone=ZONE, qtype="A", rcode="NOERROR", transport="tcp") == 1
    assert moved(before, after, q, zone=ZONE, qtype="A", rcode="NXDOMAIN", transport="udp") == 1
    assert moved(before, after, q, zone="none", qtype="A", rcode="REFUSED", transport="udp") == 1
    assert moved(before, after, q, zone=ZONE, qtype="other", rcode="NOERROR", transport="udp") == 1
    assert moved(before, after, "geodns_truncated_total") == 1
    assert moved(before, after, "geodns_ecs_queries_total", present="true") == 3
    assert moved(before, after, "geodns_ecs_queries_total", present="false") == 6
    assert moved(before, after, "geodns_query_duration_seconds_count") == 9
    assert moved(before, after, "geodns_query_duration_seconds_bucket", le="+Inf") == 9
    assert moved(before, after, "geodns_query_duration_seconds_sum") > 0
    record = "app.gslb.example.com"
    assert moved(before, after, "geodns_gslb_answers_total", record=record, cluster="eu-west-1") >= 3
    assert moved(before, after, "geodns_gslb_responses_total", record=record, outcome="answer") == 4
    assert moved(before, after, "geodns_geoip_misses_total") >= 1
    assert value(after, "geodns_gslb_fallback_total", record=record) == 0
    assert value(after, "geodns_tcp_connections_total", listen=server.server.listeners[0].address) >= 1


def test_table_and_store_gauges(server):
    samples = scrape(server)
    assert value(samples, "geodns_snapshot_version") == server.server.keeper.snapshot.version >= 1
    assert value(samples, "geodns_store_connected") == 1
    assert 0 <= value(samples, "geodns_snapshot_age_seconds") < 10
    assert value(samples, "geodns_ready") == 1
    assert value(samples, "geodns_cluster_up", cluster="eu-west-1") == 1
    assert value(samples, "geodns_cluster_state", cluster="eu-west-1", state="up") == 1
    assert value(samples, "geodns_cluster_state", cluster="eu-west-1", state="drained") == 0
    assert value(samples, "geodns_endpoint_state", cluster="eu-west-1", endpoint="198.51.100.10", state="unknown") == 1
    assert value(samples, "geodns_endpoint_up", cluster="eu-west-1", endpoint="198.51.100.10") == 1
    assert value(samples, "geodns_cluster_weight", cluster="us-east-1") == 100
    assert value(samples, "geodns_zone_serial", zone=ZONE) == 1
    assert value(samples, "geodns_config_reloads_total", result="ok") == 0
    assert value(samples, "process_resident_memory_bytes") > 0
    from importlib.metadata import version

    assert (
        value(
            samples,
            "geodns_build_info",
            version=version("geodns"),
            dnspython=version("dnspython"),
            python=platform.python_version(),
        )
        == 1
    )
    loaded = value(samples, "geodns_config_last_reload_success_timestamp_seconds")
    assert loaded == server.server.loaded_at and loaded > 1.7e9


def test_health_rtt_drain_fallback_and_reload_metrics(tmp_path):
    running = start_server(tmp_path)
    try:
        store, now = running.server.store, time.time()
        observations = [
            Observation("chk-eu", "eu-west", "eu-west-1", "198.51.100.10", True, 6.0, now, now + 60),
            Observation("chk-us", "us-east", "eu-west-1", "198.51.100.10", True, 80.0, now, now + 60),
        ]
        running.call(store.report(observations))
        running.call(running.server.keeper.sync())
        samples = scrape(running)
        assert value(samples, "geodns_cluster_rtt_seconds", cluster="eu-west-1", vantage="eu-west") == 0.006
        assert value(samples, "geodns_cluster_rtt_seconds", cluster="eu-west-1", vantage="us-east") == 0.08
        assert (
            value(
                samples,
                "geodns_endpoint_rtt_seconds",
                cluster="eu-west-1",
                endpoint="198.51.100.10",
                vantage="us-east",
                checker="chk-us",
            )
            == 0.08
        )
        assert (
            value(
                samples,
                "geodns_endpoint_observed_up",
                cluster="eu-west-1",
                endpoint="198.51.100.10",
                vantage="us-east",
                checker="chk-us",
            )
            == 1
        )
        assert value(samples, "geodns_endpoint_state", cluster="eu-west-1", endpoint="198.51.100.10", state="up") == 1

        version = value(samples, "geodns_snapshot_version")
        assert http(running, "POST", "/api/v1/clusters/eu-west-1/drain")[0] == 200
        samples = scrape(running)
        assert value(samples, "geodns_snapshot_version") > version
        assert value(samples, "geodns_cluster_state", cluster="eu-west-1", state="drained") == 1
        assert value(samples, "geodns_cluster_up", cluster="eu-west-1") == 0

        # Every checker says every endpoint is down: the record falls back to all of them (fail open).
        down = [
            Observation("chk-eu", "eu-west", c, e, False, None, now, now + 60)
            for c, e in (("us-east-1", "192.0.2.10"), ("us-east-1", "2001:db8::10"), ("ap-southeast-1", "203.0.113.10"))
        ]
        running.call(store.report(down))
        running.call(running.server.keeper.sync())
        assert addresses(ask(running, LONDON, 32)) == {"192.0.2.10", "203.0.113.10"}  # eu-west-1 stays drained
        samples = scrape(running)
        record = "app.gslb.example.com"
        assert value(samples, "geodns_gslb_fallback_total", record=record) == 1
        assert value(samples, "geodns_gslb_responses_total", record=record, outcome="fallback") == 1
        assert (
            value(
                samples,
                "geodns_endpoint_observed_up",
                cluster="us-east-1",
                endpoint="192.0.2.10",
                vantage="eu-west",
                checker="chk-eu",
            )
            == 0
        )

        started = value(samples, "geodns_config_last_reload_success_timestamp_seconds")
        config = tmp_path / "geodns.yaml"
        good = config.read_text()
        config.write_text(good.replace("ttl: 30", "ttl: -5"))
        assert http(running, "POST", "/api/v1/reload")[0] == 422
        assert running.reload() is False  # SIGHUP's path counts the same way
        samples = scrape(running)
        assert value(samples, "geodns_config_reloads_total", result="failed") == 2
        assert value(samples, "geodns_config_reloads_total", result="ok") == 0
        # A failed reload leaves the timestamp; a good one moves it (Prometheus' own convention).
        assert value(samples, "geodns_config_last_reload_success_timestamp_seconds") == started
        config.write_text(good)
        assert running.reload() is True
        assert value(scrape(running), "geodns_config_last_reload_success_timestamp_seconds") >= started
        assert running.server.loaded_at >= started
    finally:
        running.stop()


def test_each_server_has_its_own_registry_and_counts_survive_reload(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = start_server(tmp_path / "a"), start_server(tmp_path / "b")
    try:
        for _ in range(4):
            ask(a, LONDON, 32)
        assert a.reload() is True
        ask(a, LONDON, 32)
        a_samples, b_samples = scrape(a), scrape(b)
        labels = dict(zone=ZONE, qtype="A", rcode="NOERROR", transport="udp")
        assert value(a_samples, "geodns_queries_total", **labels) == 5
        assert value(a_samples, "geodns_gslb_answers_total", record="app.gslb.example.com", cluster="eu-west-1") == 5
        assert value(b_samples, "geodns_queries_total", **labels) == 0
    finally:
        a.stop()
        b.stop()


def test_zone_only_server_exports_query_metrics(tmp_path):
    zone = write(tmp_path / "z.zone", "$ORIGIN z.test.\n@ 60 IN SOA ns h 1 2 3 4 5\n@ IN NS ns\nns IN A 192.0.2.1\n")
    running = RunningServer(Settings(zone_paths=(zone,), dns_listen=(("127.0.0.1", 0),), http_listen=("127.0.0.1", 0)))
    try:
        udp(running, "ns.z.test.")
        samples = scrape(running)
        assert value(samples, "geodns_queries_total", zone="z.test", qtype="A", rcode="NOERROR", transport="udp") == 1
        assert not any(name.startswith("geodns_gslb_answers") for name, _ in samples)
    finally:
        running.stop()


def test_embedded_checker_probes_show_up(tmp_path):
    from tests.redis_server import free_port

    closed = free_port()  # nothing listens: every probe fails at once
    check = f', check: {{type: tcp, url: "tcp://127.0.0.1:{closed}", interval: 0.2s, timeout: 0.1s, rise: 1, fall: 1}}'
    running = start_server(tmp_path)
    config = tmp_path / "geodns.yaml"
    config.write_text(
        config.read_text().replace('endpoints: ["203.0.113.10"]}', f'endpoints: ["203.0.113.10"]{check}}}')
    )
    assert running.reload() is True
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            samples = scrape(running)
            labels = dict(cluster="ap-southeast-1", endpoint="203.0.113.10")
            if value(samples, "geodns_endpoint_state", **labels, state="down") == 1:
                break
            time.sleep(0.1)
        assert value(samples, "geodns_checker_probes_total", **labels, outcome="refused") >= 1
        assert value(samples, "geodns_checker_probes_total", **labels, outcome="ok") == 0
        assert value(samples, "geodns_checker_probe_duration_seconds_count", cluster="ap-southeast-1") >= 1
        assert value(samples, "geodns_checker_endpoint_down_since_timestamp_seconds", **labels) > 0
        assert value(samples, "geodns_checker_suspect") == 0
        assert value(samples, "geodns_checker_last_probe_ok", **labels) == 0
        assert value(samples, "geodns_checker_endpoint_state", **labels, state="down") == 1
        assert value(samples, "geodns_endpoint_state", **labels, state="down") == 1
        checker = running.server.checker.checker_id
        assert value(samples, "geodns_endpoint_observed_up", **labels, vantage="local", checker=checker) == 0
    finally:
        running.stop()
