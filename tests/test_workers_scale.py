"""Workers at scale and among other servers: one server per address, pipe messages of any size,
and a reload of large data while queries keep coming.

All with real ``geodns serve`` process trees on loopback, dnspython as the client.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.dnsserver import write
from tests.test_cli import REPO, Proc
from tests.test_gslb_dns import addresses, config_text
from tests.test_workers import alive, ask_sg, serve_workers, status, wait_for, worker_pids

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")


def drain(proc: Proc, cluster: str) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{proc.http_port}/api/v1/clusters/{cluster}/drain", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


@pytest.mark.parametrize("second_workers", ["2", "1"])
def test_a_second_server_on_a_served_address_fails_and_the_first_keeps_every_query(tmp_path, second_workers):
    first = serve_workers(tmp_path / "first")
    try:
        # The second one, same address, its own config: refused at start, naming the address.
        config = write(tmp_path / "second" / "geodns.yaml", config_text(tmp_path / "second"))
        second = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "geodns",
                "serve",
                "--config",
                str(config),
                "--dns-listen",
                f"127.0.0.1:{first.port}",
                "--http-listen",
                "127.0.0.1:0",
                "--workers",
                second_workers,
            ],
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            _, err = second.communicate(timeout=60)
        finally:
            if second.poll() is None:
                second.kill()
                second.wait(5)
        assert second.returncode == 2, err
        assert f"127.0.0.1:{first.port} is already in use" in err, err
        assert "event=started" not in err
        # Only the first answers: a drain it alone knows about is in every answer, from 60 sockets.
        drain(first, "ap-southeast-1")
        assert [addresses(ask_sg(first)) for _ in range(60)] == [{"198.51.100.10"}] * 60
        assert all(w["alive"] for w in status(first)["workers"])
    finally:
        assert first.stop() == 0


def test_a_framed_message_larger_than_the_socket_buffer_arrives_whole():
    """A message that arrives in many pieces on a non-blocking socket is awaited, not taken for EOF."""
    from geodns.process.pipe import Channel, frame

    big = ("snapshot", os.urandom(8 << 20))

    async def main():
        a, b = socket.socketpair()
        sender, receiver = Channel(a), Channel(b)
        got: list[tuple] = []
        done = asyncio.Event()
        reads = 0

        def readable():
            nonlocal reads
            reads += 1
            got.extend(receiver.receive())
            if got or receiver.closed:
                done.set()

        asyncio.get_running_loop().add_reader(receiver.fileno(), readable)
        await sender.send(frame(*big))
        await asyncio.wait_for(done.wait(), 30)
        asyncio.get_running_loop().remove_reader(receiver.fileno())
        assert got == [big] and not receiver.closed
        assert reads > 1  # it did arrive in pieces
        sender.close()
        assert receiver.receive() == [] and receiver.closed  # EOF only when the peer closes
        receiver.close()

    asyncio.run(main())


def many_clusters_config(tmp_path: Path, count: int) -> Path:
    """The test config plus ``count`` clusters of 16 endpoints each (about 700 bytes of snapshot each)."""
    extra = "".join(
        f"  bulk-{i}: {{region: us-east, endpoints: [{', '.join(f'192.0.2.{j}' for j in range(1, 17))}]}}\n"
        for i in range(count)
    )
    text = config_text(tmp_path).replace("clusters:\n", "clusters:\n" + extra, 1)
    return write(tmp_path / "geodns.yaml", text)


def test_a_snapshot_larger_than_the_pipe_reaches_every_worker(tmp_path):
    config = many_clusters_config(tmp_path, 1000)  # a snapshot of about 700 kB
    proc = Proc("--config", str(config), "--http-listen", "127.0.0.1:0", "--workers", "2")
    pids = worker_pids(proc)
    try:
        drain(proc, "ap-southeast-1")  # 200: every worker confirmed the new snapshot
        assert [addresses(ask_sg(proc)) for _ in range(30)] == [{"198.51.100.10"}] * 30
        drain(proc, "eu-west-1")
        assert [addresses(ask_sg(proc)) for _ in range(30)] == [{"192.0.2.10"}] * 30
        assert all(alive(pid) for pid in pids.values())
        assert not any("worker-orphaned" in line or "worker-died" in line for line in proc.lines)
    finally:
        assert proc.stop() == 0


def big_zone(tmp_path: Path, hosts: int, address: str) -> None:
    zone = tmp_path / "gslb.example.com.zone"
    base = zone.read_text().split(";; bulk\n")[0]
    zone.write_text(base + ";; bulk\n" + "".join(f"h{i} IN A {address}\n" for i in range(hosts)))


def test_a_reload_of_large_data_loses_no_query(tmp_path):
    """A reload whose data is tens of MB: queries sent all through it are all answered, by live workers."""
    config = write(tmp_path / "geodns.yaml", config_text(tmp_path))
    big_zone(tmp_path, 60000, "192.0.2.1")
    proc = Proc("--config", str(config), "--http-listen", "127.0.0.1:0", "--workers", "2")
    answers: list[str] = []
    lost: list[str] = []
    stop = threading.Event()

    def client():
        i = 0
        while not stop.is_set():
            name = f"h{i % 60000}.gslb.example.com."
            i += 1
            try:
                r = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=proc.port, timeout=2)
                answers.append(r.answer[0][0].to_text())
            except Exception as exc:  # noqa: BLE001 - every failure is a lost query here
                lost.append(f"{name}: {exc!r}")

    thread = threading.Thread(target=client)
    try:
        thread.start()
        assert wait_for(lambda: len(answers) > 20, 10)
        big_zone(tmp_path, 60000, "192.0.2.2")
        proc.proc.send_signal(signal.SIGHUP)
        proc.read_until("event=reloaded ", timeout=120)
        seen = len(answers)
        assert wait_for(lambda: len(answers) > seen + 200, 30)  # well after the old workers left
        stop.set()
        thread.join(10)
        assert lost == []
        assert answers[0] == "192.0.2.1" and answers[-1] == "192.0.2.2"
        workers = status(proc)["workers"]
        assert len(workers) == 2 and all(w["alive"] and w["started"] for w in workers)
        assert not any("worker-orphaned" in line or "worker-died" in line for line in proc.lines)
    finally:
        stop.set()
        thread.join(10)
        assert proc.stop() == 0


def private_and_rss_kb(pid: int) -> tuple[int, int]:
    """(USS, RSS) of one process in kB: its private pages, and every page it maps."""
    fields = {
        line.split(":")[0]: int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
        if line.strip()
    }
    return fields["Private_Clean"] + fields["Private_Dirty"], fields["Rss"]


def test_workers_share_the_loaded_data_instead_of_each_holding_a_copy(tmp_path):
    config = write(tmp_path / "geodns.yaml", config_text(tmp_path))
    big_zone(tmp_path, 60000, "192.0.2.1")
    proc = Proc("--config", str(config), "--http-listen", "127.0.0.1:0", "--workers", "2")
    pids = worker_pids(proc)
    try:
        for i in (0, 59999):  # the data is there, in both
            assert {proc.ask(f"h{i}.gslb.example.com.").answer[0][0].to_text() for _ in range(10)} == {"192.0.2.1"}
        _, supervisor_rss = private_and_rss_kb(proc.proc.pid)
        for pid in pids.values():
            private, rss = private_and_rss_kb(pid)
            assert rss > supervisor_rss / 2  # it maps the data ...
            assert private < supervisor_rss / 4, (private, supervisor_rss)  # ... but does not own a copy
    finally:
        assert proc.stop() == 0
