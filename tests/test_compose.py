"""docker/: the compose file, the Dockerfile and Prometheus' config, checked without a Docker engine.

``docker-compose config -q`` (Debian's docker-compose works without an engine)
validates the compose file where it is installed; the structural checks below
run everywhere and pin the topology the README promises.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
import yaml

from geodns.config.load import load_config
from tests.polling import wait_for
from tests.processes import Child
from tests.redis_server import RedisServer, free_port
from tests.test_checker_http import checker as checker_process
from tests.test_checker_http import config as checker_config
from tests.test_checker_http import sims  # noqa: F401  (a fixture this module's test takes)

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "docker-compose.yml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (apt-get install docker-compose); the structural checks still ran",
)
def test_docker_compose_accepts_the_file():
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_the_whole_topology():
    services = compose()["services"]
    assert {
        "redis",
        "geodns-1",
        "geodns-2",
        "checker-us",
        "checker-eu",
        "ingress-us-east",
        "ingress-eu-west",
        "ingress-ap-southeast",
        "prometheus",
    } <= set(services)
    regions = {
        services[c]["command"][services[c]["command"].index("--region") + 1] for c in ("checker-us", "checker-eu")
    }
    assert regions == {"us-east", "eu-west"}
    published = {p for s in ("geodns-1", "geodns-2") for p in services[s]["ports"]}
    assert {"127.0.0.1:5301:5353/udp", "127.0.0.1:5301:5353/tcp", "127.0.0.1:5302:5353/udp"} <= published


def test_prometheus_scrapes_both_servers_and_both_checkers():
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert sorted(targets) == ["checker-eu:8054", "checker-us:8054", "geodns-1:8053", "geodns-2:8053"]
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in config["scrape_configs"])


def test_checkers_serve_http_and_are_healthy_only_when_ready(tmp_path, sims):
    """Each checker service listens on 8054, Prometheus' target; its healthcheck, run as written (the
    port moved to a free one) against a real `geodns check`, fails while the store is unreachable and
    passes once a probe round reached a real Redis."""
    services = compose()["services"]
    for name in ("checker-us", "checker-eu"):
        command = services[name]["command"]
        assert command[command.index("--http-listen") + 1] == "0.0.0.0:8054"
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD" and "http://127.0.0.1:8054/readyz" in test[-1]
        assert not services[name]["healthcheck"].get("disable")
    healthcheck = services["checker-us"]["healthcheck"]["test"][1:]

    def healthy(port: int) -> bool:
        command = [
            sys.executable if healthcheck[0] == "python" else healthcheck[0],
            *(part.replace(":8054/", f":{port}/") for part in healthcheck[1:]),
        ]
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0

    dead = f"redis://127.0.0.1:{free_port()}/0"
    port = free_port()
    child = checker_process(tmp_path, checker_config(tmp_path, dead, sims), dead, port)
    try:
        until(lambda: _status(f"http://127.0.0.1:{port}/healthz") == 200, child)
        assert not healthy(port)
    finally:
        assert child.stop() == 0, child.output()

    redis = RedisServer(tmp_path).start()
    port = free_port()
    child = checker_process(tmp_path, checker_config(tmp_path, redis.url, sims), redis.url, port)
    try:
        until(lambda: healthy(port), child)
    finally:
        assert child.stop() == 0, child.output()
        redis.stop()


def test_dockerfile_is_non_root_with_a_healthcheck():
    text = (DOCKER / "Dockerfile").read_text()
    user = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/readyz" in text


def _instruction(text: str, word: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(word + " "))
    return json.loads(line[len(word) + 1 :])


def test_the_image_default_command_serves_the_embedded_defaults(tmp_path):
    """What `docker run geodns` runs (ENTRYPOINT + CMD, ports moved to free ones) answers dig and /readyz."""
    text = (DOCKER / "Dockerfile").read_text()
    command = _instruction(text, "ENTRYPOINT") + _instruction(text, "CMD")
    assert command[:2] == ["geodns", "serve"] and "--config" not in command
    dns_port, http_port = free_port(), free_port()
    args = [a.replace(":5353", f":{dns_port}").replace(":8053", f":{http_port}") for a in command[1:]]
    child = Child(["--log-level", "warning", *args], tmp_path / "serve.log")
    try:
        ready = f"http://127.0.0.1:{http_port}/readyz"
        until(lambda: _status(ready) == 200, child)
        query = dns.message.make_query("app.gslb.example.com", "A")
        answer = dns.query.udp(query, "127.0.0.1", port=dns_port, timeout=5)
        assert answer.rcode() == dns.rcode.NOERROR and answer.answer
    finally:
        assert child.stop() == 0, child.output()


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except (OSError, urllib.error.HTTPError):
        return None


def until(condition, child: Child, timeout: float = 60.0) -> None:
    """Poll until ``condition`` holds; fail with the child's log if it died first or never got there."""
    wait_for(lambda: condition() or child.proc.poll() is not None, timeout)
    if not condition():
        what = "exited early" if child.proc.poll() is not None else f"was not ready within {timeout:.0f}s"
        raise AssertionError(f"geodns {what}:\n{child.output()}")


def test_compose_wires_the_admin_token_from_an_env_file():
    services = compose()["services"]
    for name in ("geodns-1", "geodns-2"):
        assert services[name]["environment"]["GEODNS_ADMIN_TOKEN"] == "${GEODNS_ADMIN_TOKEN:-}"
    assert "GEODNS_ADMIN_TOKEN=" in (DOCKER / ".env.example").read_text()


def test_dockerignore_keeps_local_state_out_of_the_build():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "**/__pycache__"} <= set(ignored)


def test_the_config_the_containers_read_is_valid_and_matches_the_services():
    config = load_config(REPO / "config" / "stack" / "compose.yaml")
    services = compose()["services"]
    assert config.store == "redis://redis:6379/0" and "redis" in services
    probes = {e.probe.split(":")[0] for c in config.clusters.values() for e in c.endpoints}
    assert probes == {"ingress-us-east", "ingress-eu-west", "ingress-ap-southeast"}
    assert probes <= set(services)
