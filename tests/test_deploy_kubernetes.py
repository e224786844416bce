"""deploy/kubernetes/: every manifest is a valid Kubernetes object, checked offline.

How: each document is decoded by kubernetes_asyncio's generated models (the API's OpenAPI schema
as Python classes, with client-side validation of required fields and enums on), and encoded back:
a field the schema does not know would be dropped on the way, so the round trip must give back
every field written.  (``kubectl apply --dry-run=client`` needs an API server to map kinds; none
runs here.)  On top of the schema: the agent's role reads exactly what it watches, the commands
the containers run are ones ``geodns`` accepts, and the shipped config loads and serves.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s

from geodns.cli import build_parser
from geodns.config.load import load_config
from geodns.discovery.objects import KINDS
from geodns.process.server import build_engine

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
MANIFESTS = sorted(DEPLOY.glob("*.yaml"))


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def model_name(doc: dict[str, Any]) -> str:
    """``apps/v1`` ``Deployment`` -> ``V1Deployment`` (the generated class)."""
    version = doc["apiVersion"].rpartition("/")[2]
    return f"{version.capitalize()}{doc['kind']}"


def missing(written: Any, decoded: Any, path: str = "") -> list[str]:
    """Every field of ``written`` that ``decoded`` lost (the schema does not know it) or changed."""
    if isinstance(written, dict):
        if not isinstance(decoded, dict):
            return [path or "."]
        out = []
        for k, v in written.items():
            out += missing(v, decoded.get(k), f"{path}.{k}") if k in decoded else [f"{path}.{k}"]
        return out
    if isinstance(written, list):
        if not isinstance(decoded, list) or len(decoded) != len(written):
            return [path]
        return [m for i, (a, b) in enumerate(zip(written, decoded)) for m in missing(a, b, f"{path}[{i}]")]
    return [] if written == decoded or str(written) == str(decoded) else [f"{path}: {written!r} became {decoded!r}"]


def test_there_are_manifests_for_every_part():
    kinds = {(name, doc["kind"], doc["metadata"]["name"]) for name, doc in documents()}
    for expected in (
        ("agent.yaml", "Deployment", "geodns-agent"),
        ("agent.yaml", "ServiceAccount", "geodns-agent"),
        ("agent.yaml", "ClusterRole", "geodns-agent"),
        ("agent.yaml", "ClusterRoleBinding", "geodns-agent"),
        ("geodns.yaml", "Deployment", "geodns"),
        ("geodns.yaml", "Deployment", "geodns-checker"),
        ("redis.yaml", "StatefulSet", "geodns-redis"),
    ):
        assert expected in kinds


@pytest.mark.parametrize("name,doc", documents(), ids=lambda v: v if isinstance(v, str) else v["kind"])
async def test_each_manifest_is_a_valid_object_of_its_kind(name, doc):
    async with k8s.ApiClient() as api:
        decoded = api.deserialize(SimpleNamespace(data=json.dumps(doc)), model_name(doc))
        back = api.sanitize_for_serialization(decoded)
    assert missing(doc, back) == [], f"{name}: {doc['kind']} {doc['metadata']['name']}"


async def test_a_misspelt_field_is_caught():
    """The check itself: a field the schema lacks, and a required one missing."""
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"selectr": {"a": "b"}}}
    async with k8s.ApiClient() as api:
        back = api.sanitize_for_serialization(api.deserialize(SimpleNamespace(data=json.dumps(doc)), "V1Service"))
        assert missing(doc, back) == [".spec.selectr"]
        with pytest.raises(ValueError, match="containers"):
            api.deserialize(SimpleNamespace(data=json.dumps({"spec": {}})), "V1PodSpec")


def test_the_agent_role_reads_exactly_what_the_agent_watches():
    (role,) = [d for _, d in documents() if d["kind"] == "ClusterRole"]
    granted = {
        (group, resource, tuple(r["verbs"]))
        for r in role["rules"]
        for group in r["apiGroups"]
        for resource in r["resources"]
    }
    assert granted == {(group, plural, ("get", "list", "watch")) for group, plural in KINDS.values()}
    (binding,) = [d for _, d in documents() if d["kind"] == "ClusterRoleBinding"]
    (agent,) = [d for _, d in documents() if d["kind"] == "Deployment" and d["metadata"]["name"] == "geodns-agent"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == agent["spec"]["template"]["spec"]["serviceAccountName"]


def test_the_containers_run_commands_geodns_accepts():
    for _, doc in documents():
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            if container["image"].startswith("geodns"):
                build_parser().parse_args(container["args"])  # SystemExit (status 2) on a wrong flag


def test_the_shipped_config_loads_and_serves_its_discovery_zones(tmp_path):
    (config_map,) = [d for _, d in documents() if d["kind"] == "ConfigMap"]
    for file, text in config_map["data"].items():
        (tmp_path / file).write_text(text)
    config = load_config(tmp_path / "geodns.yaml")
    assert config.discovery is not None and config.discovery.export_zone is not None
    engine = build_engine(config)  # raises when a discovery zone is not served
    assert {b".".join(z.origin).decode() for z in engine.zones} == {"gslb.example.com", "clusterset.example.internal"}


def test_the_probes_ask_the_port_each_geodns_container_serves_them_on():
    """A probe on a port nothing listens on would restart the pod for ever: where a container says
    ``--http-listen``, its probes' named port is that port."""
    checked = 0
    for _, doc in documents():
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            args = [str(a) for a in container.get("args", [])]
            listen = next(
                (
                    a.split("=", 1)[1] if "=" in a else args[i + 1]
                    for i, a in enumerate(args)
                    if a.startswith("--http-listen")
                ),
                None,
            )
            if listen is None:
                continue
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            for kind in ("readinessProbe", "livenessProbe"):
                port = container[kind]["httpGet"]["port"]
                assert ports.get(port, port) == int(listen.rsplit(":", 1)[1]), (container["name"], kind)
                checked += 1
    assert checked >= 4  # the checker's two and the agent's two
