"""``geodns serve --workers 2`` as a real process tree: SO_REUSEPORT workers fed by the supervisor.

Which worker answered is told apart honestly by the per-worker query counters
the workers send to the supervisor (``/api/v1/status`` → ``workers``), not by
anything in the DNS answers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.error
import urllib.request
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.dnsserver import write
from tests.polling import wait_for
from tests.scrape import Samples
from tests.scrape import scrape as scrape_url
from tests.test_cli import Proc
from tests.test_gslb_dns import APP, SG, addresses, config_text

pytestmark = pytest.mark.skipif(not hasattr(__import__("socket"), "SO_REUSEPORT"), reason="needs SO_REUSEPORT")


def serve_workers(tmp_path: Path, count: int = 2) -> Proc:
    config = write(tmp_path / "geodns.yaml", config_text(tmp_path))
    return Proc("--config", str(config), "--http-listen", "127.0.0.1:0", "--workers", str(count))


def worker_pids(proc: Proc) -> dict[int, int]:
    """Worker index → PID, from the workers' own `event=worker-started` lines."""
    pids = {}
    for line in proc.lines:
        m = re.search(r"event=worker-started worker=(\d+) pid=(\d+)", line)
        if m:
            pids[int(m.group(1))] = int(m.group(2))
    return pids


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def status(proc: Proc) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.http_port}/api/v1/status", timeout=3) as r:
        return json.loads(r.read())


def gslb_answers(proc: Proc) -> dict[str, float]:
    """Cluster -> geodns_gslb_answers for app.gslb.example.com, from the supervisor's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.http_port}/metrics", timeout=3) as r:
        text = r.read().decode()
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r'^geodns_gslb_answers_total\{cluster="([^"]+)",record="app.gslb.example.com"\} (\S+)$', text, re.M
        )
    }


def scrape(proc: Proc) -> Samples:
    """Every sample of the supervisor's /metrics, keyed by name and sorted labels."""
    return scrape_url(f"http://127.0.0.1:{proc.http_port}/metrics")


def ask_sg(proc: Proc, tcp: bool = False):
    q = dns.message.make_query(APP, "A", use_edns=0, options=[dns.edns.ECSOption(SG, 24)])
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=proc.port, timeout=3)
    return dns.query.udp(q, "127.0.0.1", port=proc.port, timeout=3)


def test_workers_share_queries_follow_drains_and_stop_cleanly(tmp_path):
    proc = serve_workers(tmp_path)
    pids = worker_pids(proc)
    try:
        assert sorted(pids) == [0, 1] and all(alive(pid) for pid in pids.values())
        assert os.getpid() not in pids.values() and proc.proc.pid not in pids.values()
        # UDP and TCP, GSLB by ECS: Singapore gets ap-southeast.
        assert addresses(ask_sg(proc)) == {"203.0.113.10"}
        assert addresses(ask_sg(proc, tcp=True)) == {"203.0.113.10"}
        # 50 queries from 50 source sockets (dnspython opens one per query): the kernel
        # spreads them over both workers, which report their counters to the supervisor.
        for _ in range(50):
            assert ask_sg(proc).rcode() == dns.rcode.NOERROR

        def both_counted():
            workers = status(proc)["workers"]
            return (
                workers if all(w["queries"] > 0 for w in workers) and sum(w["queries"] for w in workers) >= 52 else None
            )

        workers = wait_for(both_counted, 5.0, 0.2)
        assert workers, status(proc)["workers"]
        assert {w["pid"] for w in workers} == set(pids.values())
        assert status(proc)["queries"] >= 52  # the merged count, as /metrics reports it
        (listener,) = status(proc)["listeners"]  # one address, both workers' sockets summed
        assert listener["address"] == f"127.0.0.1:{proc.port}" and listener["udp_queries"] >= 51
        assert listener["tcp_queries"] >= 1 and listener["tcp_connections"] >= 1
        # The GSLB decision counters are every worker's too: all 52 answers went to ap-southeast-1.
        assert wait_for(lambda: gslb_answers(proc).get("ap-southeast-1", 0) >= 52, 3.0, 0.2), gslb_answers(proc)

        # A drain through the supervisor's admin API returns once every worker has it:
        # twenty answers right after it (from twenty sockets, so from both workers) are all moved.
        req = urllib.request.Request(
            f"http://127.0.0.1:{proc.http_port}/api/v1/clusters/ap-southeast-1/drain", method="POST"
        )
        with urllib.request.urlopen(req, timeout=3) as r:
            assert r.status == 200
        assert [addresses(ask_sg(proc)) for _ in range(20)] == [{"198.51.100.10"}] * 20
    finally:
        assert proc.stop() == 0
    assert wait_for(lambda: not any(alive(pid) for pid in pids.values()), 3.0)


def test_a_killed_worker_is_restarted_and_sigterm_stops_all(tmp_path):
    proc = serve_workers(tmp_path)
    pids = worker_pids(proc)
    try:
        os.kill(pids[0], signal.SIGKILL)
        line = proc.read_until("event=worker-restarted", timeout=10)
        new_pid = int(re.search(r"pid=(\d+)", line).group(1))
        assert new_pid not in pids.values() and alive(new_pid)
        assert not alive(pids[0])
        assert any("event=worker-died worker=0" in line for line in proc.lines)
        # The new worker has bound the shared port; every answer comes back.
        assert wait_for(lambda: next((w for w in status(proc)["workers"] if w["worker"] == 0), {}).get("started"), 10.0)
        for _ in range(30):
            assert addresses(ask_sg(proc)) == {"203.0.113.10"}
        assert addresses(ask_sg(proc, tcp=True)) == {"203.0.113.10"}
        # /metrics counts the restart and measures every worker, not only the supervisor.
        metrics = scrape(proc)
        assert metrics[("geodns_worker_restarts_total", ())] == 1
        assert metrics[("geodns_workers", ())] == 2
        for worker in ("0", "1"):
            labels = (("worker", worker),)
            assert metrics[("geodns_worker_cpu_seconds_total", labels)] >= 0  # present; ticks are 10 ms
            rss = metrics[("geodns_worker_resident_memory_bytes", labels)]
            assert 0 < metrics[("geodns_worker_proportional_memory_bytes", labels)] < rss
        # SIGHUP: the supervisor reloads, then forks a new worker per slot from itself, and only
        # then does it say "reloaded": from that line on, every answer is the new config's.
        # The replaced workers drain and exit.
        proc.proc.send_signal(signal.SIGHUP)
        replaced = [
            re.search(r"worker=(\d+) pid=(\d+) old-pid=(\d+)", proc.read_until("event=worker-replaced"))
            for _ in range(2)
        ]
        assert sorted((m.group(1), int(m.group(3))) for m in replaced) == [("0", new_pid), ("1", pids[1])]
        proc.read_until("event=reloaded ")
        assert addresses(ask_sg(proc)) == {"203.0.113.10"}
        assert wait_for(lambda: not alive(new_pid) and not alive(pids[1]), 10.0)
        assert {w["pid"] for w in status(proc)["workers"]} == {int(m.group(2)) for m in replaced}
    finally:
        assert proc.stop() == 0
    everyone = [int(m.group(2)) for m in replaced]
    assert wait_for(lambda: not any(alive(pid) for pid in everyone), 3.0)


def test_workers_stop_by_themselves_when_the_supervisor_is_gone(tmp_path):
    proc = serve_workers(tmp_path)
    pids = worker_pids(proc)
    proc.proc.kill()  # SIGKILL: no chance to stop the workers itself
    proc.proc.wait(5)
    assert wait_for(lambda: not any(alive(pid) for pid in pids.values()), 5.0), "orphaned workers kept running"


CPUS = len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value, expected", [("2", 2), ("auto", CPUS), (None, CPUS)])
def test_server_workers_config(tmp_path, value, expected):
    """One worker per CPU this process may use, by default and for "auto"."""
    from geodns.config.load import load_config

    text = f"server: {{workers: {value}}}\n" if value is not None else "server: {nsid: x}\n"
    config = load_config(write(tmp_path / "geodns.yaml", text))
    assert config.server.workers == expected


@pytest.mark.skipif(CPUS < 2, reason="needs two CPUs for the default to mean workers")
def test_serve_by_default_answers_from_one_worker_per_cpu(tmp_path):
    config = write(tmp_path / "geodns.yaml", config_text(tmp_path))
    proc = Proc("--config", str(config), "--http-listen", "127.0.0.1:0")
    try:
        assert sorted(worker_pids(proc)) == list(range(CPUS))
        assert addresses(ask_sg(proc)) == {"203.0.113.10"}
    finally:
        assert proc.stop() == 0


def test_server_workers_config_problems(tmp_path):
    from geodns.config.load import load_config
    from geodns.errors import ConfigError

    path = write(tmp_path / "geodns.yaml", "server:\n  workers: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:2: server.workers: must be between 1 and 256 or 'auto', not 0"
    ]
    path = write(tmp_path / "geodns.yaml", "server:\n  workers: many\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "server.workers: must be an integer between 1 and 256 or 'auto'" in str(info.value.problems[0])


def test_a_restarted_worker_serves_the_running_config_not_the_files(tmp_path):
    """Files edited (or broken) on disk without a successful reload must not reach a worker that restarts."""
    proc = serve_workers(tmp_path)
    pids = worker_pids(proc)
    try:
        zone = tmp_path / "gslb.example.com.zone"
        zone.write_text(zone.read_text().replace("192.0.2.53", "192.0.2.99"))  # edited, not reloaded
        config = tmp_path / "geodns.yaml"
        config.write_text(config.read_text().replace("policy: [healthy, geo, weighted]", "policy: [telepathy]"))
        proc.proc.send_signal(signal.SIGHUP)
        proc.read_until("event=reload-failed")  # broken: rejected
        os.kill(pids[0], signal.SIGKILL)
        line = proc.read_until("event=worker-restarted", timeout=10)
        new_pid = int(re.search(r"pid=(\d+)", line).group(1))
        # The new worker may log that it started before the supervisor logs the restart.
        started = f"event=worker-started worker=0 pid={new_pid}"
        if not any(started in seen for seen in proc.lines):
            proc.read_until(started)
        answers = {
            r.to_text()
            for _ in range(20)
            for r in dns.query.udp(
                dns.message.make_query("ns1.gslb.example.com.", "A"), "127.0.0.1", port=proc.port, timeout=3
            ).answer[0]
        }
        assert answers == {"192.0.2.53"}
        assert addresses(ask_sg(proc)) == {"203.0.113.10"}
    finally:
        assert proc.stop() == 0


def test_a_write_a_stuck_worker_has_not_confirmed_is_a_503(tmp_path):
    proc = serve_workers(tmp_path)
    pids = worker_pids(proc)
    os.kill(pids[0], signal.SIGSTOP)
    try:
        req = urllib.request.Request(
            f"http://127.0.0.1:{proc.http_port}/api/v1/clusters/ap-southeast-1/drain", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        assert info.value.code == 503
        assert "not every DNS worker confirmed it" in json.loads(info.value.read())["error"]
    finally:
        os.kill(pids[0], signal.SIGCONT)
        assert proc.stop() == 0


def test_a_port_0_taken_for_udp_after_the_probe_is_tried_again(monkeypatch):
    """``dns_listen: ["127.0.0.1:0"]``: the probe finds a port free for TCP and UDP, but another
    process may take it for UDP before the bind (a suite run failed so).  Another port is tried;
    a port the operator named is not, and twenty in a row give a clear error."""
    import errno

    from geodns.process import claim
    from geodns.tooling.stack.topology import free_port

    real, failed = claim._pairs, []

    def taken_twice(host, port, count, reuse_port):
        if len(failed) < 2:
            failed.append(port)
            raise OSError(errno.EADDRINUSE, "taken since the probe")
        return real(host, port, count, reuse_port)

    monkeypatch.setattr(claim, "_pairs", taken_twice)
    listen, slots = claim.claim_addresses((("127.0.0.1", 0),), 1, reuse_port=False)
    try:
        (_, port), ((_, tcp, udp),) = listen[0], slots[0]
        assert len(failed) == 2 and port != 0
        assert tcp.getsockname()[1] == udp.getsockname()[1] == port
    finally:
        for bound in slots:
            for _, tcp, udp in bound:
                tcp.close()
                udp.close()

    monkeypatch.setattr(claim, "_pairs", lambda *a: (_ for _ in ()).throw(OSError(errno.EADDRINUSE, "taken")))
    with pytest.raises(OSError, match="no port free for both TCP and UDP on 127.0.0.1"):
        claim.claim_addresses((("127.0.0.1", 0),), 1, reuse_port=False)
    failed.clear()
    monkeypatch.setattr(claim, "_pairs", taken_twice)
    with pytest.raises(OSError, match="taken since the probe"):
        claim.claim_addresses((("127.0.0.1", free_port()),), 1, reuse_port=False)
    assert len(failed) == 1  # a named port: tried once
