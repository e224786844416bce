"""Partition or outage, end to end: real `geodns check` processes, real `geodns sim-ingress`
ingresses, a real redis-server, a real Server answering dnspython queries.

Checkers are cut off for real, and every packet a test sends goes to loopback or into a
network namespace the test made (tests/netns.py).  The ingresses a checker can be cut
off from run in an ingress namespace, on addresses local to it; the test process and
ordinary checkers reach them from here over a veth pair.  A cut-off checker runs in a
checker namespace joined only to the ingress namespace, and reaches Redis over its unix
socket; a cut is a blackhole route inside the checker namespace.  The record is `policy: [healthy, failover]`: eu-west-1
(priority 0) is answered while it is up, us-east-1 otherwise, so an answer says
at once whether eu-west-1 was taken out.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from geodns.process.server import Settings
from geodns.state.redis import RedisStore
from tests.dnsserver import GSLB_ZONE, RunningServer, write
from tests.netns import Netns, NetnsUnavailable
from tests.processes import Child, SimIngress
from tests.redis_server import RedisServer

APP = "app.gslb.example.com."
EU1, EU2, US = "198.51.100.11", "198.51.100.12", "192.0.2.10"
INTERVAL = 0.3
CHECK = f"{{type: http, path: /healthz, interval: {INTERVAL}s, timeout: 0.25s, rise: 1, fall: 2}}"
ANSWERS = 250  # as many as the reproduction counted


def config(tmp_path: Path, store: str, eu: list[SimIngress], us: SimIngress | None) -> Path:
    """eu-west-1 (checked, one endpoint per ingress in ``eu``) first; us-east-1 checked only when it
    has an ingress, else unchecked (answered as "unknown", up)."""
    eu_endpoints = ", ".join(f'{{address: "{address}", probe: "{sim.probe}"}}' for address, sim in zip((EU1, EU2), eu))
    us_endpoint = f'{{address: "{US}", probe: "{us.probe}"}}' if us else f'{{address: "{US}"}}'
    return write(
        tmp_path / "geodns.yaml",
        f"""
server: {{dns_listen: ["127.0.0.1:0"], http_listen: null}}
store: "{store}"
zones: ["{write(tmp_path / "gslb.example.com.zone", GSLB_ZONE)}"]
checker: {{embedded: off}}
regions:
  us-east: {{lat: 39.0, lon: -77.5, continent: NA, countries: [US]}}
  eu-west: {{lat: 53.3, lon: -6.3,  continent: EU, countries: [GB]}}
clusters:
  eu-west-1:
    region: eu-west
    priority: 0
    endpoints: [{eu_endpoints}]
    check: {CHECK}
  us-east-1:
    region: us-east
    priority: 1
    endpoints: [{us_endpoint}]
{f"    check: {CHECK}" if us else ""}
records:
  app.gslb.example.com: {{ttl: 5, clusters: [eu-west-1, us-east-1], policy: [healthy, failover], answers: 4}}
""",
    )


class Rig:
    """What one test runs, stopped in reverse order whatever happens."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.redis = RedisServer(tmp_path).start()
        self.sims: list[SimIngress] = []
        self.checkers: list[Child] = []
        self.server: RunningServer | None = None
        self.netns: Netns | None = None  # removed once every process in it has stopped

    def sim(self, name: str, netns: Netns | None = None, address: int = 0) -> SimIngress:
        """On loopback, or on ``netns.addresses[address]`` inside the ingress namespace."""
        if netns is None:
            self.sims.append(SimIngress(name, self.tmp_path))
        else:
            self.sims.append(SimIngress(name, self.tmp_path, netns.addresses[address], netns.ingress_prefix))
        return self.sims[-1]

    def serve(self, cfg: Path) -> RunningServer:
        self.server = RunningServer(Settings(config_path=cfg))
        return self.server

    def checker(self, cfg: Path, checker_id: str, region: str, netns: Netns | None = None) -> Child:
        store = self.redis.unix_url if netns else self.redis.url
        child = Child(
            ["check", "--config", str(cfg), "--store", store, "--checker-id", checker_id, "--region", region],
            self.tmp_path / f"checker-{checker_id}.log",
            prefix=netns.prefix if netns else None,
        )
        self.checkers.append(child)
        return child

    def answer(self) -> str:
        assert self.server is not None
        resp = dns.query.udp(dns.message.make_query(APP, "A"), self.server.host, port=self.server.port, timeout=3)
        return ",".join(sorted(r.to_text() for rr in resp.answer for r in rr))

    def served_votes(self) -> dict[tuple[str, str], bool | None]:
        """(checker, endpoint) -> the fresh verdict in the snapshot the server answers from."""
        assert self.server is not None
        return _votes(self.server.server.keeper.snapshot)

    def stored_votes(self) -> dict[tuple[str, str], bool | None]:
        async def load():
            store = RedisStore(self.redis.url)
            try:
                return await store.load()
            finally:
                await store.close()

        return _votes(asyncio.run(load()))

    def close(self) -> None:
        failures = []
        try:
            for child in self.checkers:
                if child.stop() != 0:
                    failures.append(child.output())
            if self.server is not None:
                self.server.stop()
        finally:
            try:
                for sim in self.sims:
                    sim.stop()
                self.redis.stop()
            finally:
                if self.netns is not None:
                    self.netns.close()
        assert not failures, failures


def _votes(snapshot) -> dict[tuple[str, str], bool | None]:
    now = time.time()
    return {(o.checker, o.endpoint): o.up for obs in snapshot.observations.values() for o in obs if o.expires > now}


def wait_for(condition: Callable[[], bool], timeout: float, what: str, rig: Rig) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            logs = "\n".join(f"--- {c.log.name}\n{c.output()[-3000:]}" for c in rig.checkers)
            raise AssertionError(f"not within {timeout}s: {what}; votes {rig.stored_votes()}\n{logs}")
        time.sleep(0.02)
    return time.monotonic() - started


def every(votes: dict, checkers: str, endpoints: tuple[str, ...], up: bool | None) -> bool:
    return all((c, e) in votes and votes[(c, e)] is up for c in checkers for e in endpoints)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def netns(rig: Rig) -> Netns:
    """The rig removes it after stopping the processes inside (this fixture's teardown would run first)."""
    try:
        rig.netns = Netns()
    except NetnsUnavailable as exc:
        pytest.skip(f"no network namespace for a real cut: {exc}")
    return rig.netns


def test_ingress_addresses_live_in_a_namespace_of_the_tests_own(netns: Netns) -> None:
    """The wiring keeps the network rule: the ingress addresses are local to the ingress namespace,
    not to this one; the checker namespace reaches them through the ingress namespace and nothing
    else; neither has a route to a non-loopback address of this one, bar the ingress namespace's
    way back to the pair's root-side end (the source of what this namespace sends it)."""
    ours = [
        line.split()[3].split("/")[0]
        for line in subprocess.run(
            ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True
        ).stdout.splitlines()
    ]
    root = [address for address in ours if not address.startswith("127.")]
    assert root, ours  # the root-side end of the pair, at least
    for address in netns.addresses:
        assert address not in ours
        assert netns.route(netns.ingress_ns, address).startswith(f"local {address} "), address
        assert " via 10.214." in netns.route(netns.checker_ns, address), netns.route(netns.checker_ns, address)
    for address in root:
        assert netns.route(netns.checker_ns, address) is None, (address, netns.route(netns.checker_ns, address))
        if address != netns.root_address:  # where the ingress namespace answers this one
            assert netns.route(netns.ingress_ns, address) is None, (address, netns.route(netns.ingress_ns, address))
    for ns in (netns.ingress_ns, netns.checker_ns):
        forward = subprocess.run(
            ["ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward"], capture_output=True, text=True
        ).stdout.strip()
        assert forward == "0", (ns, forward)


def test_two_checkers_one_cut_off_from_one_ingress_keeps_it_in(rig: Rig, netns: Netns) -> None:
    """(a) A 1-1 split is no majority for down: eu-west-1 stays in the answers."""
    eu, us = rig.sim("eu-west-1", netns, 0), rig.sim("us-east-1", netns, 1)
    cfg = config(rig.tmp_path, rig.redis.url, [eu], us)
    rig.serve(cfg)
    rig.checker(cfg, "a", "us-east")
    rig.checker(cfg, "b", "eu-west", netns)
    wait_for(lambda: every(rig.served_votes(), "ab", (EU1, US), True), 20, "both checkers see both up", rig)
    assert rig.answer() == EU1

    netns.cut(eu.host)  # b no longer reaches eu-west-1; it still reaches us-east-1
    seen: list[str] = []

    def b_votes_eu_down() -> bool:
        seen.append(rig.answer())
        return rig.served_votes().get(("b", EU1)) is False

    took = wait_for(b_votes_eu_down, 10, "b votes eu-west-1 down", rig)
    print(f"\nb cut off from eu-west-1: votes it down after {took:.2f}s; {len(seen)} answers meanwhile")
    votes = rig.served_votes()
    assert votes[("a", EU1)] is True and votes[("b", US)] is True, votes  # a real 1-1 split, b not suspect
    seen += [rig.answer() for _ in range(ANSWERS)]
    assert rig.served_votes()[("b", EU1)] is False  # the split held while we asked
    assert seen.count(EU1) == len(seen), f"{len(seen) - seen.count(EU1)} of {len(seen)} answers left eu-west-1"


def test_the_only_checked_cluster_dies_one_checker_takes_it_out(rig: Rig) -> None:
    """(b) Both endpoints of the only checked cluster die: an outage in one place, not a partition."""
    eu = [rig.sim("eu-west-1a"), rig.sim("eu-west-1b")]
    cfg = config(rig.tmp_path, rig.redis.url, eu, None)
    rig.serve(cfg)
    checker = rig.checker(cfg, "a", "us-east")
    wait_for(lambda: every(rig.served_votes(), "a", (EU1, EU2), True), 20, "a sees eu-west-1 up", rig)
    assert rig.answer() == f"{EU1},{EU2}"

    died = time.monotonic()
    for sim in eu:
        sim.stop()  # the cluster really dies
    wait_for(lambda: rig.answer() == US, 10, "answers move to us-east-1", rig)
    moved = time.monotonic() - died
    print(f"\nthe only checked cluster died: answers left it after {moved:.2f}s (fall x interval = {2 * INTERVAL}s)")
    assert every(rig.stored_votes(), "a", (EU1, EU2), False)
    answers = [rig.answer() for _ in range(ANSWERS)]
    assert answers.count(US) == ANSWERS, f"{ANSWERS - answers.count(US)} of {ANSWERS} answers named the dead cluster"
    assert "event=checker-suspect" not in checker.output()


def test_one_checker_cut_off_from_everything_changes_no_answer(rig: Rig, netns: Netns) -> None:
    """(c) b loses its one place while a still sees it up: b is the one cut off, and abstains."""
    eu = rig.sim("eu-west-1", netns)
    cfg = config(rig.tmp_path, rig.redis.url, [eu], None)
    rig.serve(cfg)
    rig.checker(cfg, "a", "us-east")
    b = rig.checker(cfg, "b", "eu-west", netns)
    wait_for(lambda: every(rig.served_votes(), "ab", (EU1,), True), 20, "both checkers see eu-west-1 up", rig)
    assert rig.answer() == EU1

    netns.cut(*netns.addresses)  # b reaches no ingress at all (Redis still, over its socket)
    seen: list[str] = []

    def b_abstains() -> bool:
        seen.append(rig.answer())
        return ("b", EU1) in (votes := rig.served_votes()) and votes[("b", EU1)] is None

    took = wait_for(b_abstains, 10, "b goes suspect and withdraws its vote", rig)
    print(f"\nb cut off from everything: suspect after {took:.2f}s; {len(seen)} answers meanwhile")
    assert rig.served_votes()[("a", EU1)] is True
    assert "event=checker-suspect checker=b" in b.output()
    seen += [rig.answer() for _ in range(ANSWERS)]
    assert seen.count(EU1) == len(seen), f"{len(seen) - seen.count(EU1)} of {len(seen)} answers changed"


def test_three_checkers_two_cut_off_take_it_out(rig: Rig, netns: Netns) -> None:
    """(d) b and c both lose eu-west-1, a still sees it: 2 of 3 down is a majority, and the two do
    not excuse each other as partitioned."""
    eu = [rig.sim("eu-west-1a", netns), rig.sim("eu-west-1b", netns)]
    cfg = config(rig.tmp_path, rig.redis.url, eu, None)
    rig.serve(cfg)
    rig.checker(cfg, "a", "us-east")
    rig.checker(cfg, "b", "eu-west", netns)
    rig.checker(cfg, "c", "eu-west", netns)
    wait_for(lambda: every(rig.served_votes(), "abc", (EU1, EU2), True), 20, "three checkers see eu-west-1 up", rig)
    assert rig.answer() == f"{EU1},{EU2}"

    netns.cut(*netns.addresses)
    moved = wait_for(lambda: rig.answer() == US, 15, "answers move to us-east-1", rig)
    print(f"\n2 of 3 checkers cut off: answers left eu-west-1 after {moved:.2f}s")
    wait_for(lambda: every(rig.served_votes(), "bc", (EU1, EU2), False), 10, "b and c vote it down", rig)
    assert every(rig.served_votes(), "a", (EU1, EU2), True)
    answers = [rig.answer() for _ in range(ANSWERS)]
    assert answers.count(US) == ANSWERS, f"{ANSWERS - answers.count(US)} of {ANSWERS} answers named eu-west-1"
