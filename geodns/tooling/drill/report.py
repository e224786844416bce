"""From samples to a verdict: how fast answers moved, what was lost, and a timeline.

Definitions, the same for every scenario:

- *away*: for a client that got the failed cluster before the fault, the time
  from the fault to its first answer after its last answer naming the failed
  cluster (while the fault lasts).  The bound is the detection window,
  ``fall x interval + 1 s``.
- *stale after window*: answers naming the failed cluster later than the fault
  plus the window, summed over clients.  Must be 0.
- *back*: from the recovery to the first answer naming the cluster again.
- *changed*: for a steady scenario (nothing should move), answers differing
  from the client's one baseline answer.  Must be 0.
- *failed*: samples where no server gave a usable reply (timeout, SERVFAIL,
  refused port) or the reply held no address.  Must be 0: "nothing lost".
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

from .recorder import Sample


@dataclass
class Phases:
    """When the fault began and ended, and what it should have done."""

    scenario: str
    record: str
    t_fault: float
    t_recover: float
    t_end: float
    failed_cluster: str | None  # None: no cluster is failed (a process fault)
    failed_addresses: set[str]
    expect: str  # "shift": away and back; "steady": nothing moves
    window: float  # detection window: fall x interval + 1 s
    slack: float = 0.5  # scheduling slack allowed on top of the window
    steady_until: float | None = None  # "steady": answers after this may move (a deliberate write)
    notes: list[str] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # extra (name, ok, detail)


@dataclass
class ClientResult:
    client: str
    samples: int
    baseline: dict[str, int]  # answer -> count before the fault
    away_s: float | None = None
    back_s: float | None = None
    stale_after_window: int = 0
    changed: int = 0
    failed: int = 0


@dataclass
class Report:
    scenario: str
    record: str
    passed: bool
    window_s: float
    fault_s: float
    recover_s: float
    duration_s: float
    samples: int
    failed_queries: int
    failed_attempts: dict[str, int]  # server -> attempts that failed (a resolver then tried another)
    clients: list[ClientResult]
    checks: list[dict]
    notes: list[str]
    timeline: list[str]
    # Per client, every sample as (seconds, cluster name | "failed" | "other"), for plots.
    series: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    series_clusters: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def to_text(self) -> str:
        lines = [
            f"drill {self.scenario}: {'PASS' if self.passed else 'FAIL'}  (record {self.record}, "
            f"{self.samples} answers over {self.duration_s:.1f}s; fault at {self.fault_s:.1f}s, "
            f"recovery at {self.recover_s:.1f}s; detection window {self.window_s:.1f}s)"
        ]
        for c in self.clients:
            base = ", ".join(f"{a or '-'} x{n}" for a, n in c.baseline.items())
            parts = [f"baseline {base}"]
            if c.away_s is not None:
                parts.append(f"moved away in {c.away_s:.2f}s")
            if c.back_s is not None:
                parts.append(f"back in {c.back_s:.2f}s")
            parts.append(f"stale after window {c.stale_after_window}")
            parts.append(f"changed {c.changed}")
            parts.append(f"failed {c.failed}/{c.samples}")
            lines.append(f"  {c.client:<7} " + "; ".join(parts))
        tried = ", ".join(f"{s}: {n}" for s, n in self.failed_attempts.items()) or "none"
        lines.append(
            f"  failed queries (no server answered): {self.failed_queries}; "
            f"failed attempts per server (retried elsewhere): {tried}"
        )
        for check in self.checks:
            lines.append(f"  [{'ok' if check['ok'] else 'FAIL'}] {check['name']}: {check['detail']}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        lines.append("  timeline (one column per 0.5 s; letter = cluster answered, x = failed, | = fault/recovery):")
        lines.extend(f"    {row}" for row in self.timeline)
        return "\n".join(lines)


def analyse(samples: list[Sample], phases: Phases, clusters: dict[str, dict]) -> Report:
    """Measure one drill's samples against what the scenario promised."""
    by_client: dict[str, list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.t):
        by_client.setdefault(s.client, []).append(s)
    bad = phases.failed_addresses
    limit = phases.window + phases.slack
    results, checks = [], []

    def names(s: Sample) -> bool:
        return bool(bad.intersection(s.answer))

    for client, rows in by_client.items():
        before = [s for s in rows if s.t < phases.t_fault and not s.failed]
        during = [s for s in rows if phases.t_fault <= s.t < phases.t_recover]
        after = [s for s in rows if s.t >= phases.t_recover]
        baseline = Counter(",".join(s.answer) for s in before)
        r = ClientResult(client, len(rows), dict(baseline.most_common()), failed=sum(s.failed for s in rows))
        r.stale_after_window = sum(1 for s in during if s.t >= phases.t_fault + phases.window and names(s))
        affected = bad and any(names(s) for s in before)
        if phases.expect == "shift" and affected:
            last_bad = max((i for i, s in enumerate(during) if names(s)), default=-1)
            if last_bad + 1 < len(during):
                r.away_s = during[last_bad + 1].t - phases.t_fault
            first_back = next((s for s in after if names(s)), None)
            if first_back is not None:
                r.back_s = first_back.t - phases.t_recover
            checks.append(
                (
                    f"{client} moved away within {limit:.1f}s",
                    r.away_s is not None and r.away_s <= limit,
                    "never" if r.away_s is None else f"{r.away_s:.2f}s",
                )
            )
            checks.append(
                (
                    f"{client} came back after recovery",
                    r.back_s is not None,
                    "not within the recording" if r.back_s is None else f"{r.back_s:.2f}s",
                )
            )
        if phases.expect == "steady" and len(baseline) == 1:
            usual = next(iter(baseline))
            until = phases.steady_until if phases.steady_until is not None else float("inf")
            r.changed = sum(
                1 for s in rows if phases.t_fault <= s.t < until and not s.failed and ",".join(s.answer) != usual
            )
        results.append(r)

    if phases.expect == "shift" and bad:
        # A drill whose baseline never sent anyone to the broken cluster proves nothing: every
        # "moved away" check above would be skipped and the report would pass on no evidence.
        routed = [r.client for r in results if any(bad.intersection(a.split(",")) for a in r.baseline)]
        checks.append(
            (
                f"the baseline sent some client to {phases.failed_cluster}",
                bool(routed),
                ", ".join(routed) if routed else "no client was answered with it before the fault",
            )
        )
    failed_queries = sum(s.failed for s in samples)
    attempts: Counter[str] = Counter(a.server for s in samples for a in s.attempts if not a.ok)
    if bad:
        stale = sum(r.stale_after_window for r in results)
        checks.append(("no answer named the failed cluster after the detection window", stale == 0, f"{stale} answers"))
    if phases.expect == "steady":
        changed = sum(r.changed for r in results)
        checks.append(("answers stayed put", changed == 0, f"{changed} answers changed"))
    checks.append(("no failed queries", failed_queries == 0, f"{failed_queries} of {len(samples)}"))
    checks.extend(phases.checks)
    t_last = max((s.t for s in samples), default=phases.t_end)
    return Report(
        scenario=phases.scenario,
        record=phases.record,
        passed=all(ok for _n, ok, _d in checks),
        window_s=phases.window,
        fault_s=phases.t_fault,
        recover_s=phases.t_recover,
        duration_s=t_last,
        samples=len(samples),
        failed_queries=failed_queries,
        failed_attempts=dict(attempts),
        clients=results,
        checks=[{"name": n, "ok": ok, "detail": d} for n, ok, d in checks],
        notes=list(phases.notes),
        timeline=timeline(by_client, phases, clusters),
        series=series(by_client, clusters),
        series_clusters=list(clusters),
    )


def series(by_client: dict[str, list[Sample]], clusters: dict[str, dict]) -> dict[str, list[tuple[float, str]]]:
    """Each sample named by the cluster its first address belongs to (what a client would use)."""
    owner = {address: name for name, cluster in clusters.items() for address in cluster.get("addresses", ())}

    def label(s: Sample) -> str:
        if s.failed:
            return "failed"
        return owner.get(s.answer[0], "other")

    return {client: [(round(s.t, 3), label(s)) for s in samples] for client, samples in by_client.items()}


def timeline(
    by_client: dict[str, list[Sample]], phases: Phases, clusters: dict[str, dict], step: float = 0.5
) -> list[str]:
    """A text plot: per client, the cluster answered most in each half second."""
    letter: dict[str, str] = {}
    for name, cluster in clusters.items():
        for address in cluster.get("addresses", ()):
            letter[address] = name[0].upper() if name[0].upper() not in letter.values() else name[0].lower()
    legend = ", ".join(f"{name[0].upper()}={name}" for name in clusters)
    rows = []
    for client, samples in by_client.items():
        end = max(s.t for s in samples)
        cells = []
        t = 0.0
        marks = sorted((phases.t_fault, phases.t_recover))
        while t <= end:
            bucket = [s for s in samples if t <= s.t < t + step]
            for m in list(marks):
                if t <= m < t + step:
                    cells.append("|")
                    marks.remove(m)
            if not bucket:
                cells.append(" ")
            elif any(s.failed for s in bucket):
                cells.append("x")
            else:
                counts = Counter(letter.get(s.answer[0], "?") if s.answer else "." for s in bucket)
                cells.append(counts.most_common(1)[0][0])
            t += step
        rows.append(f"{client:<7} {''.join(cells)}")
    rows.append(f"{'':7} ({legend}; . = empty answer)")
    return rows
