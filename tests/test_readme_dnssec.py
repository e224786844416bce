"""README's DNSSEC session is true: run as written, in a fresh directory.

``geodns keygen``, the ``dnssec:`` block added to the shipped config, ``geodns ds``, the unbound
anchor and stub from README's block, ``dig`` through that unbound, and ``delv`` with README's
trust-anchors line.  A new key each run means a new key tag, DS digest and signatures, so those
(and the signatures' dates, the address the weighted policy picks and the TTL a resolver counts
down) are compared by shape; everything else must read as README shows it.  The unbound is
tests/unbound.py's (loopback only), given README's anchor and stub.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from geodns.dnssec import keys
from tests.polling import wait_for
from tests.processes import Child
from tests.redis_server import free_port
from tests.unbound import Unbound

REPO = Path(__file__).resolve().parent.parent
ZONE = "gslb.example.com"

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("dig", "delv")) or not Path("/usr/sbin/unbound").exists(),
    reason="dig, delv and unbound are needed (apt-get install bind9-dnsutils unbound)",
)


def section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("\n## DNSSEC\n")
    return text[start : text.index("\n## ", start + 1)]


def blocks(text: str) -> list[tuple[str, list[str]]]:
    """The fenced blocks, in order: (language, lines)."""
    return [(lang, body.split("\n")) for lang, body in re.findall(r"\n```(\w*)\n(.*?)\n```", text, re.S)]


def session(lines: list[str]) -> list[tuple[str, list[str]]]:
    """An ``sh`` block's commands (without their comments) and the lines under each."""
    out: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("$ "):
            out.append((re.split(r"\s{2,}#", line[2:], maxsplit=1)[0].strip(), []))
        else:
            out[-1][1].append(line)
    return out


def run(command: str, cwd: Path) -> list[str]:
    argv = shlex.split(command)
    if argv[0] == "geodns":
        argv = [sys.executable, "-m", "geodns", *argv[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd)
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done.stdout.rstrip("\n").split("\n")


def shape(line: str, tag: str) -> str:
    line = re.sub(rf"\b{tag}\b", "<tag>", line)
    line = re.sub(r"\b\d{14}\b", "<date>", line)
    line = re.sub(r"\b\d{1,3}(\.\d{1,3}){3}\b", "<address>", line)
    line = re.sub(r"^(\S+\.)\s+\d+\s+IN\b", r"\1 <ttl> IN", line.strip())
    if re.fullmatch(r"[A-Za-z0-9+/=]{20,}( \))?", line):
        line = "<signature>" + (" )" if line.endswith(")") else "")
    return re.sub(r"\s+", " ", line)


def test_the_readme_dnssec_session_is_what_geodns_unbound_and_delv_print(tmp_path):
    text = section()
    (keygen,), config, (ds,), resolver_config, (dig,) = (
        session(lines) if lang == "sh" else lines for lang, lines in blocks(text)
    )
    # 1. geodns keygen: README's command after its "mkdir keys &&".
    command, expected = keygen
    mkdir, command = command.split(" && ")
    assert mkdir == "mkdir keys"
    (tmp_path / "keys").mkdir()
    (basename,) = run(command, tmp_path)
    (readme_basename,) = expected
    readme_tag = readme_basename.rsplit("+", 1)[1]
    assert basename[: -len(readme_tag)] == readme_basename[: -len(readme_tag)], (basename, readme_basename)
    key = keys.read(tmp_path / "keys" / f"{basename}.private")
    # Records print the tag as a plain number; only the file name pads it to five digits.
    tag = str(key.tag)

    # 2. The shipped config plus README's dnssec block, naming the key just made.
    shipped = (REPO / "config" / "geodns.yaml").read_text()
    shipped = shipped.replace("../zones/", f"{REPO}/zones/").replace("geoip/", f"{REPO}/config/geoip/")
    block = "\n".join(config).replace(readme_basename, basename)
    assert f"keys/{basename}.private" in block
    (tmp_path / "geodns.yaml").write_text(shipped + "\n" + block + "\n")

    # 3. geodns ds: README's line with this key's tag and digest.
    command, expected = ds
    digest = key.ds().digest.hex()
    readme_digest = expected[0].split()[-1]
    assert run(command, tmp_path) == [line.replace(readme_tag, tag).replace(readme_digest, digest) for line in expected]

    dns_port = free_port()
    server = Child(
        ["serve", "--config", str(tmp_path / "geodns.yaml"), "--dns-listen", f"127.0.0.1:{dns_port}"]
        + ["--http-listen", f"127.0.0.1:{free_port()}", "--workers", "1"],
        tmp_path / "serve.log",
    )
    resolver = None
    try:

        def answering() -> bool:
            assert server.proc.poll() is None, server.output()
            try:
                dns.query.udp(dns.message.make_query(ZONE, "SOA"), "127.0.0.1", port=dns_port, timeout=0.5)
            except (OSError, dns.exception.Timeout):
                return False
            return True

        assert wait_for(answering, 60.0, 0.1), server.output()

        # 4. unbound with README's anchor and stub zone.
        conf = "\n".join(resolver_config)
        (anchor,) = re.findall(r'trust-anchor: "([^"]+)"', conf)
        assert re.search(rf'stub-zone:\s+name: "{ZONE}"\s+stub-addr: 127\.0\.0\.1@5353', conf), conf
        anchor = anchor.replace(readme_tag, tag).replace(readme_digest, digest)
        resolver = Unbound(tmp_path / "unbound", ZONE, ("127.0.0.1", dns_port), [anchor])

        # 5. dig through it: README's lines, in order, among dig's.
        command, expected = dig
        assert "-p 15354" in command and "127.0.0.1@15354" in conf
        actual = [shape(line, tag) for line in run(command.replace("15354", str(resolver.port)), tmp_path)]
        wanted = [shape(line, readme_tag) for line in expected]
        found = iter(actual)
        assert all(line in found for line in wanted), "\n".join(wanted) + "\n--- dig printed ---\n" + "\n".join(actual)

        # 6. delv with README's trust-anchors line (its digest written out in full).
        (anchors,) = re.findall(r"`(trust-anchors \{.*?\};)`", text)
        anchors = re.sub(r'"[0-9a-f]+\.\.\."', f'"{digest}"', anchors.replace(readme_tag, tag))
        (tmp_path / "anchors.conf").write_text(anchors + "\n")
        (delv,) = re.findall(r"`(delv @127\.0\.0\.1 -p 5353 [^`]+)`", text)
        delv = delv.replace("-p 5353", f"-p {dns_port}")
        (validated,) = re.findall(r"prints `([^`]+)`, and for a name", text)
        assert run(delv, tmp_path)[0] == validated
        (verdict,) = re.findall(r"for a name that does not exist `([^`]+)`", text)
        nowhere = delv.replace(f"www.{ZONE}", f"no-such-name.{ZONE}")
        assert verdict in run(nowhere, tmp_path)
    finally:
        if resolver is not None:
            resolver.stop()
        server.stop()
