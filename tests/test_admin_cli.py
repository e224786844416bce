"""The admin subcommands as an operator runs them: real processes against a real server's HTTP API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.test_gslb_dns import LONDON, addresses, ask
from tests.test_http_api import base_url, start_server

EU, USE = "198.51.100.10", "192.0.2.10"


def geodns(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GEODNS_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "geodns", *args], capture_output=True, text=True, timeout=30, cwd=REPO, env=environment
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("cli"), ', admin_token: "t0ken"')
    yield running
    running.stop()


def london_answer(server) -> set[str]:
    """What a London client gets: dig (where installed) else dnspython, both over real UDP."""
    dig = shutil.which("dig")
    if dig is None:
        return addresses(ask(server, LONDON, 32))
    out = subprocess.run(
        [
            dig,
            "@" + server.host,
            "-p",
            str(server.port),
            "app.gslb.example.com",
            "A",
            f"+subnet={LONDON}/32",
            "+short",
            "+time=2",
            "+tries=1",
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return set(out.stdout.split())


def test_drain_from_the_cli_moves_dig_answers(server):
    api = base_url(server)
    assert london_answer(server) == {EU}
    done = geodns("drain", "eu-west-1", "--api", api, "--token", "t0ken")
    assert done.returncode == 0, done.stderr
    assert "drain: cluster eu-west-1" in done.stdout and "drained" in done.stdout
    assert london_answer(server) == {USE}
    done = geodns("undrain", "eu-west-1", env={"GEODNS_API": api, "GEODNS_ADMIN_TOKEN": "t0ken"})
    assert done.returncode == 0, done.stderr
    assert london_answer(server) == {EU}


def test_status_table_and_json(server):
    done = geodns("status", "--api", base_url(server))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith(": ready")
    header = next(line for line in lines if line.startswith("CLUSTER"))
    assert header.split() == [
        "CLUSTER",
        "REGION",
        "STATE",
        "ADMIN",
        "WEIGHT",
        "LOAD",
        "SHED",
        "ENDPOINTS",
        "UP/DOWN",
        "BY",
        "VANTAGE",
    ]
    rows = {line.split()[0]: line for line in lines[lines.index(header) + 1 :]}
    assert set(rows) == {"us-east-1", "eu-west-1", "ap-southeast-1"}
    assert rows["eu-west-1"].index("eu-west ") == header.index("REGION")  # columns line up
    done = geodns("status", "--json", "--api", base_url(server))
    assert done.returncode == 0
    body = json.loads(done.stdout)
    assert body["status"]["ready"] is True and len(body["clusters"]["clusters"]) == 3


def test_weight_and_explain(server):
    api = base_url(server)
    done = geodns("weight", "us-east-1", "0", "--api", api, "--token", "t0ken")
    assert done.returncode == 0, done.stderr
    assert "weight 0: cluster us-east-1" in done.stdout
    done = geodns("weight", "us-east-1", "100", "--endpoint", USE, "--api", api, "--token", "t0ken", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["weight"] == 0
    assert geodns("weight", "us-east-1", "100", "--api", api, "--token", "t0ken").returncode == 0

    done = geodns("explain", "app.gslb.example.com", "--client", f"{LONDON}/32", "--api", api)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"client {LONDON} (as ECS /32)" in out and "located: GB / EU via geoip" in out
    geo = next(line for line in out.splitlines() if line.startswith("geo "))
    assert geo.split()[-2:] == ["us-east-1,", "ap-southeast-1"]  # the DROPPED column
    assert "geo       country GB matches region eu-west" in out  # the WHY table
    assert f"answer: {EU} from eu-west-1" in out
    done = geodns("explain", "app.gslb.example.com", "--client", LONDON, "--type", "AAAA", "--json", "--api", api)
    assert json.loads(done.stdout)["answer"] == ["2001:db8:1::10"]


def test_reload_ok(server):
    done = geodns("reload", "--api", base_url(server), "--token", "t0ken")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("reloaded: zones gslb.example.com.")


def test_errors_are_clear_and_exit_non_zero(server):
    api = base_url(server)
    done = geodns("drain", "eu-west-9", "--api", api, "--token", "t0ken")
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        "geodns drain: unknown cluster 'eu-west-9' (HTTP 404)",
        "  clusters: ap-southeast-1, eu-west-1, us-east-1",
    ]
    done = geodns("drain", "eu-west-1", "--api", api)
    assert done.returncode == 1 and "Bearer" in done.stderr and "(HTTP 401)" in done.stderr
    done = geodns("explain", "nope.gslb.example.com", "--client", "192.0.2.1", "--api", api)
    assert done.returncode == 1 and "not a GSLB record" in done.stderr
    done = geodns("status", "--api", "http://127.0.0.1:9")
    assert done.returncode == 1 and "cannot reach the geodns API at http://127.0.0.1:9" in done.stderr
    assert london_answer(server) == {EU}  # nothing changed


def test_api_as_host_port_without_a_scheme(server):
    host_port = base_url(server).split("://", 1)[1]
    done = geodns("status", "--api", host_port)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].endswith(": ready")


def test_a_closed_pipe_is_not_a_traceback(server):
    """`geodns status --json | head -1`: the reader leaves early; no traceback, status 0."""
    reader = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GEODNS_")}
    # Enough output to outlast the pipe's buffer, so the write really meets a closed pipe.
    writer = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from geodns.cli import main; "
            "sys.argv[1:] = ['status', '--json', '--api', sys.argv[1]]; "
            "import geodns.cli.apiclient as c; real = c.json.dumps; "
            "c.json.dumps = lambda *a, **k: real(*a, **k) * 2000; sys.exit(main(sys.argv[1:]))",
            base_url(server),
        ],
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        cwd=REPO,
        env=environment,
    )
    reader.stdin.close()
    reader.wait(10)
    assert writer.returncode == 0, writer.stderr
    assert "Traceback" not in writer.stderr and "BrokenPipeError" not in writer.stderr


def test_reload_of_a_broken_file_prints_the_problems(tmp_path):
    running = start_server(tmp_path)
    try:
        config = tmp_path / "geodns.yaml"
        config.write_text(config.read_text().replace("policy: [healthy, geo, weighted]", "policy: [healthy, nearest]"))
        done = geodns("reload", "--api", base_url(running))
        assert done.returncode == 1
        assert "the new config was rejected; the running config stays in force (HTTP 422)" in done.stderr
        assert f"{config}:" in done.stderr and "unknown filter 'nearest'" in done.stderr
        assert addresses(ask(running, LONDON, 32)) == {EU}
    finally:
        running.stop()
