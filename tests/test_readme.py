"""README's sample sessions are what the shipped config really prints.

The ``sh`` blocks of "GSLB answers: a worked example" and "Admin commands" are
run, in README order, against `geodns serve` on the embedded defaults (fresh
ports; the commands' text is kept: ``GEODNS_API`` points the admin commands at
the server, ``-p 5353`` becomes the real port).  Each command's output must equal
the lines under it, except for what changes from run to run: times, counts and
versions.  ``GEODNS_REGENERATE_README=1 pytest tests/test_readme.py`` writes the
real outputs back into README.md.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.polling import wait_for
from tests.processes import Child
from tests.redis_server import free_port

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SECTIONS = ("## GSLB answers: a worked example", "### Admin commands")

# What changes from run to run, and the form it is compared in.
VOLATILE = [
    (re.compile(r"\b\d+(\.\d+)?s ago"), "<t>s ago"),
    (re.compile(r"\b\d+ queries answered"), "<n> queries answered"),
    (re.compile(r"\bv\d+\b"), "v<n>"),
    (re.compile(r"\bversion \d+\b"), "version <n>"),
    (re.compile(r"\d+(\.\d+)?ms\b"), "<ms>ms"),
    (re.compile(r"\(\d+(\.\d+)?/s over the last \d+s\)"), "(<rate>)"),
    (re.compile(r"[ \t]+"), " "),
]


@dataclass
class Step:
    line: int  # README line of the command (0-based)
    command: str  # as written, without the trailing comment
    expected: list[str]  # the lines under it, up to the next command
    end: int  # README line after the expected output


def steps(text: str) -> list[Step]:
    lines = text.split("\n")
    out: list[Step] = []
    for section in SECTIONS:
        start = lines.index(section)
        i = next(n for n in range(start, len(lines)) if lines[n] == "```sh")
        end = next(n for n in range(i + 1, len(lines)) if lines[n] == "```")
        n = i + 1
        while n < end:
            if lines[n].startswith("$ "):
                command = re.split(r"\s{2,}#", lines[n][2:], maxsplit=1)[0].strip()
                m = n + 1
                while m < end and not lines[m].startswith("$ "):
                    m += 1
                expected = lines[n + 1 : m]
                while expected and not expected[-1].strip():
                    expected.pop()
                out.append(Step(n, command, expected, n + 1 + len(expected)))
                n = m
            else:
                n += 1
    return out


def normal(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        for pattern, replacement in VOLATILE:
            line = pattern.sub(replacement, line)
        out.append(line.strip())
    return out


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """`geodns serve` on the embedded defaults, on free ports."""
    if shutil.which("dig") is None:
        pytest.skip("dig is not installed (apt-get install bind9-dnsutils); the README's sessions use it")
    dns_port, http_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("readme") / "serve.log"
    child = Child(["serve", "--dns-listen", f"127.0.0.1:{dns_port}", "--http-listen", f"127.0.0.1:{http_port}"], log)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEODNS_")}
    env["GEODNS_API"] = f"http://127.0.0.1:{http_port}"

    def answering() -> bool:
        status = [sys.executable, "-m", "geodns", "status"]
        return subprocess.run(status, env=env, cwd=REPO, capture_output=True).returncode == 0

    if not wait_for(lambda: child.proc.poll() is not None or answering(), 60.0, 0.1) or child.proc.poll() is not None:
        child.stop()
        raise RuntimeError(f"geodns serve did not answer `geodns status`:\n{child.output()}")
    yield dns_port, http_port, env, child
    child.stop()


def run(command: str, dns_port: int, http_port: int, env: dict[str, str]) -> list[str]:
    argv = shlex.split(command)
    if argv[0] == "geodns":
        argv = [sys.executable, "-m", "geodns", *argv[1:]]
    else:
        argv = [a.replace("5353", str(dns_port)) if a == "5353" else a for a in argv]
        argv += ["+time=3", "+tries=1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env, cwd=REPO)
    assert done.returncode == 0, f"{command}: {done.stderr}"
    text = done.stdout.replace(f"http://127.0.0.1:{http_port}", "http://127.0.0.1:8053")
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    return lines


def test_readme_sessions_are_what_the_shipped_config_prints(shipped):
    dns_port, http_port, env, child = shipped
    text = README.read_text()
    found = steps(text)
    assert [s.command.split()[0] for s in found].count("geodns") >= 5  # the admin session is there
    regenerate = os.environ.get("GEODNS_REGENERATE_README") == "1"
    actual = []
    for step in found:
        output = run(step.command, dns_port, http_port, env)
        actual.append(output)
        if not regenerate and normal(output) != normal(step.expected):
            pytest.fail(
                f"README.md:{step.line + 1}: `{step.command}` printed {output} instead of {step.expected}; run "
                f"GEODNS_REGENERATE_README=1 pytest tests/test_readme.py if the README is what changed.\n"
                + diagnose(step.command, dns_port, http_port, env, child)
            )
    if regenerate:
        lines = text.split("\n")
        for step, output in reversed(list(zip(found, actual))):
            lines[step.line + 1 : step.end] = output
        README.write_text("\n".join(lines))


def diagnose(command: str, dns_port: int, http_port: int, env: dict[str, str], child: Child) -> str:
    """What the server says about a query whose answer was not README's: the same query again, the
    server's own explanation for that client, its status and its log."""
    lines = [f"the same command five more times: {[run(command, dns_port, http_port, env) for _ in range(5)]}"]
    subnet = re.search(r"\+subnet=(\S+)", command)
    if command.startswith("dig") and subnet is not None:
        words = shlex.split(command)[1:]
        name = next(w for i, w in enumerate(words) if w[0] not in "@-+" and words[i - 1] != "-p")
        for extra in (["explain", name, "--client", subnet.group(1)], ["status"]):
            done = subprocess.run(
                [sys.executable, "-m", "geodns", *extra], env=env, cwd=REPO, capture_output=True, text=True
            )
            lines.append(f"geodns {' '.join(extra)}:\n{done.stdout}{done.stderr}")
    lines.append(f"server log:\n{child.output()[-6000:]}")
    return "\n".join(lines)
