"""A signed zone in operation: signatures replaced before they expire, a key change on reload,
workers, /metrics, and BIND's own validator (delv) on the answers."""

from __future__ import annotations

import shutil
import signal
import subprocess

import dns.dnssec
import dns.name
import dns.rdatatype
import pytest

from tests.dnssec_setup import ORIGIN, config_text, make_key, start
from tests.dnsserver import write
from tests.polling import wait_for
from tests.scrape import scrape
from tests.test_cli import Proc
from tests.test_dnssec_validation import direct, dnskeys, validate_all

ZONE_NAME = dns.name.from_text(ORIGIN)


def signature(response, rdtype: int):
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.RRSIG and rrset.covers == rdtype:
            return rrset[0]
    raise AssertionError(f"no RRSIG over {rdtype} in:\n{response.to_text()}")


def test_signatures_are_replaced_before_they_expire_and_served_fresh(tmp_path):
    key = make_key(tmp_path)
    server = start(tmp_path, key, dnssec_extra="  validity: 8s\n  refresh: 6s\n  inception_backdate: 0\n")
    try:
        first_static = signature(direct(server, "www", "A"), dns.rdatatype.A)
        first_gslb = signature(direct(server, "weighted", "A"), dns.rdatatype.A)
        # Each is served again from the fast path's encoded answers, until the refresh task replaces it.
        renewed = wait_for(
            lambda: signature(direct(server, "www", "A"), dns.rdatatype.A).inception > first_static.inception,
            timeout=15,
        )
        assert renewed
        response = direct(server, "www", "A")
        assert validate_all(response, dnskeys(server)) == 1
        fresh = signature(response, dns.rdatatype.A)
        assert fresh.expiration - fresh.inception == 8
        assert wait_for(
            lambda: signature(direct(server, "weighted", "A"), dns.rdatatype.A).inception > first_gslb.inception,
            timeout=15,
        )
        expiry = server.run(lambda: server.server.stats.dnssec.expiry)
        assert expiry >= first_static.expiration
    finally:
        server.stop()


def test_a_key_change_on_reload_re_signs_everything(tmp_path):
    old, new = make_key(tmp_path), make_key(tmp_path, "ed25519")
    server = start(tmp_path, old)
    try:
        assert signature(direct(server, "app", "A"), dns.rdatatype.A).key_tag == old.tag
        write(
            tmp_path / "geodns.yaml",
            config_text(tmp_path, [tmp_path / f"{new.basename}.private"]),
        )
        assert server.reload()
        keys = dnskeys(server)
        assert [dns.dnssec.key_id(k) for k in keys[ZONE_NAME]] == [new.tag]
        for name, rdtype in (("app", dns.rdatatype.A), ("www", dns.rdatatype.A), ("@", dns.rdatatype.SOA)):
            response = direct(server, name, dns.rdatatype.to_text(rdtype))
            assert signature(response, rdtype).key_tag == new.tag
            assert signature(response, rdtype).algorithm == 15
            assert validate_all(response, keys) == 1
        # A broken key file on reload keeps the running keys.
        (tmp_path / f"{new.basename}.private").write_text("Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\n")
        assert not server.reload()
        assert signature(direct(server, "www", "A"), dns.rdatatype.A).key_tag == new.tag
    finally:
        server.stop()


def _metrics(port: int) -> dict[str, float]:
    """The DNSSEC samples of /metrics, by name (they carry no labels)."""
    return {name: value for (name, _), value in scrape(f"http://127.0.0.1:{port}/metrics").items() if "dnssec" in name}


def test_workers_answer_signed_and_the_supervisor_counts_their_signatures(tmp_path):
    key = make_key(tmp_path)
    config = write(tmp_path / "geodns.yaml", config_text(tmp_path, [tmp_path / f"{key.basename}.private"]))
    proc = Proc("--config", str(config), "--http-listen", "127.0.0.1:0", "--workers", "2")
    try:

        class At:
            host, port = "127.0.0.1", proc.port

        keys = dnskeys(At)
        for name in ("www", "app", "weighted", "nothing", "shop.apps"):
            for _ in range(4):
                assert validate_all(direct(At, name, "A"), keys) >= 1
        at_load = wait_for(lambda: _metrics(proc.http_port).get("geodns_dnssec_signatures_total", 0) > 0)
        assert at_load
        values = _metrics(proc.http_port)
        assert values["geodns_dnssec_next_expiry_timestamp_seconds"] > 0
        assert wait_for(lambda: _metrics(proc.http_port)["geodns_dnssec_signature_cache_hits_total"] > 0)
    finally:
        proc.stop()


def test_the_next_expiry_after_a_reload_is_the_new_signatures_not_the_retired_workers(tmp_path):
    """Workers replaced on reload take their signatures with them: /metrics's next expiry must be
    that of the signatures served now, not the (earlier) one a retired worker last reported."""
    key = make_key(tmp_path)
    key_files = [tmp_path / f"{key.basename}.private"]
    config = write(tmp_path / "geodns.yaml", config_text(tmp_path, key_files, "  validity: 3d\n  refresh: 1d\n"))
    proc = Proc("--config", str(config), "--http-listen", "127.0.0.1:0", "--workers", "2")
    try:
        first = wait_for(lambda: _metrics(proc.http_port).get("geodns_dnssec_next_expiry_timestamp_seconds", 0))
        assert first
        write(tmp_path / "geodns.yaml", config_text(tmp_path, key_files, "  validity: 7d\n  refresh: 2d\n"))
        proc.proc.send_signal(signal.SIGHUP)
        proc.read_until("event=reloaded")
        # Every worker re-signed with the 7-day validity; the old ones have drained and exited.
        assert wait_for(
            lambda: _metrics(proc.http_port)["geodns_dnssec_next_expiry_timestamp_seconds"] > first + 3 * 86400,
            timeout=20,
        ), _metrics(proc.http_port)
    finally:
        proc.stop()


@pytest.mark.skipif(shutil.which("delv") is None, reason="delv (bind9-dnsutils) not installed")
def test_delv_fully_validates_static_gslb_and_denial_answers(tmp_path):
    key = make_key(tmp_path)
    server = start(tmp_path, key)
    ds = key.ds()
    anchors = write(
        tmp_path / "anchors.conf",
        f'trust-anchors {{ {ORIGIN} static-ds {ds.key_tag} {ds.algorithm} {ds.digest_type} "{ds.digest.hex()}"; }};\n',
    )
    try:
        cases = (
            ("www", "A", "; fully validated"),
            ("app", "A", "; fully validated"),
            ("pair", "AAAA", "; fully validated"),
        )
        denials = (
            ("nothing", "A", "; negative response, fully validated"),
            ("www", "TXT", "; negative response, fully validated"),
        )
        for name, rdtype, verdict in cases + denials:
            done = subprocess.run(
                ["delv", f"@{server.host}", "-p", str(server.port), "-a", str(anchors), f"+root={ORIGIN}"]
                + [f"{name}.{ORIGIN}", rdtype],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.stdout.startswith(verdict), done.stdout + done.stderr
    finally:
        server.stop()


def test_records_from_discovery_are_signed_and_their_denials_list_what_they_answer(tmp_path):
    """A name registered after the zone was signed: its answers (addresses, or the CNAME to a host
    name) carry valid RRSIGs, and a NODATA at it says in its NSEC that A and AAAA exist there."""
    from geodns.state.model import Registration
    from tests.test_discovery_records import lease

    key = make_key(tmp_path)
    server = start(tmp_path, key, dnssec_extra="discovery: {zone: gslb.example.com}\n")
    try:
        store = server.server.store
        assert store is not None
        shop = Registration("shop.gslb.example.com", ("198.51.100.20",), "Service shop/web")
        lb = Registration("lb.gslb.example.com", ("elb-1.lb.example.net",), "Service shop/lb")
        server.call(store.publish_lease(lease("eu-west-1", "eu-west", [shop, lb])))
        keys = dnskeys(server)
        answered = wait_for(lambda: direct(server, "shop", "A").answer)
        assert [r.to_text() for rrset in answered if rrset.rdtype == dns.rdatatype.A for r in rrset] == [
            "198.51.100.20"
        ]
        assert validate_all(direct(server, "shop", "A"), keys) == 1
        cname = direct(server, "lb", "A")
        assert [rrset.rdtype for rrset in cname.answer if rrset.rdtype != dns.rdatatype.RRSIG] == [dns.rdatatype.CNAME]
        assert validate_all(cname, keys) == 1
        nodata = direct(server, "shop", "TXT")
        (nsec,) = [rrset for rrset in nodata.authority if rrset.rdtype == dns.rdatatype.NSEC]
        types = set(nsec[0].to_text().split()[1:])  # "<next name> <types...>"
        assert {"A", "AAAA"} <= types and "TXT" not in types
        assert validate_all(nodata, keys) >= 2  # the NSEC and the SOA
    finally:
        server.stop()
