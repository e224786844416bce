"""``geodns drill cluster-overload``: a cluster's load rises past its watermarks, then falls.

The simulated ingress reports a load in its health JSON (``/_sim?load=``) and
the checkers read it (``check.load_json``).  The load is not scripted: the
drill plays a demand (rising from 0.5 to 1.3 of capacity, then falling to 0.3)
and the ingress reports ``demand x`` the share of its home clients' answers
that still name it over the last seconds, so moving traffic lowers the load
the servers react to, as it would for real.  The report shows the home
clients' traffic leaving gradually, the load settling under the high
watermark, and the traffic returning when the load falls.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from statistics import mean

from ..stack.topology import SHED
from ..stack.topology import SHED_HIGH as HIGH
from ..stack.topology import SHED_LOW as LOW
from .recorder import Recorder
from .report import Phases, Report
from .target import Deployment, DrillError

START, PEAK, COOL = 0.5, 1.3, 0.3  # demand, as a fraction of the cluster's capacity
WINDOW = 2.0  # seconds of answers one load figure stands for


class Feeder(threading.Thread):
    """Writes ``demand x kept`` to the ingress four times a second; keeps what it wrote."""

    def __init__(self, dep: Deployment, cluster: str, rec: Recorder, home: set[str], addresses: set[str]):
        super().__init__(daemon=True, name="drill-load")
        self.url = f"{dep.ingress(cluster)}/_sim"
        self.rec, self.home, self.addresses = rec, home, addresses
        self.demand = lambda t: START
        self.log: list[tuple[float, float, float, float]] = []  # (t, demand, kept, load)
        self.stop = threading.Event()
        self.error: str | None = None

    def kept(self, now: float) -> float:
        recent = [s for s in self.rec.samples[-2000:] if s.client in self.home and now - WINDOW <= s.t and not s.failed]
        if not recent:
            return 1.0
        return sum(1 for s in recent if self.addresses.intersection(s.answer)) / len(recent)

    def put(self, load: float) -> None:
        request = urllib.request.Request(f"{self.url}?load={load!r}", method="PUT")
        with urllib.request.urlopen(request, timeout=3) as r:
            json.loads(r.read())

    def run(self) -> None:
        while not self.stop.is_set():
            now = self.rec.now()
            demand, kept = self.demand(now), self.kept(now)
            load = round(demand * kept, 4)
            try:
                self.put(load)
            except OSError as exc:
                self.error = str(exc)
            self.log.append((now, demand, kept, load))
            self.stop.wait(0.25)


def cluster_overload(dep: Deployment, opts) -> Report:
    from .scenarios import _timeline

    cluster = opts.cluster or "eu-west-1"
    record = opts.record or SHED
    addresses = dep.addresses(cluster)
    if not addresses:
        raise DrillError(f"no answer addresses known for {cluster}")
    interval = dep.timing.interval
    if opts.hold is None:
        opts.hold = max(20.0, 40 * interval)
    if opts.after is None:
        opts.after = max(10.0, 20 * interval)
    ramp = opts.hold / 3
    state: dict = {}

    def inject(rec: Recorder, ph: Phases) -> None:
        home = {s.client for s in rec.samples if s.t < ph.t_fault and addresses.intersection(s.answer)}
        if not home:
            raise DrillError(f"no client was answered with {cluster} before the fault: nothing to shed")
        feeder = state["feeder"] = Feeder(dep, cluster, rec, home, addresses)
        t0 = ph.t_fault
        feeder.demand = lambda t: START + (PEAK - START) * min(1.0, max(0.0, (t - t0) / ramp))
        feeder.start()
        ph.notes.append(
            f"{cluster}'s demand rises from {START:g} to {PEAK:g} of its capacity over {ramp:.0f}s "
            f"and holds; its ingress reports demand x the share of {', '.join(sorted(home))}'s "
            f"answers still naming it (last {WINDOW:g}s); watermarks {LOW:g}/{HIGH:g}"
        )

    def recover(rec: Recorder, ph: Phases) -> None:
        feeder: Feeder = state["feeder"]
        t1 = ph.t_recover
        feeder.demand = lambda t: COOL if t >= t1 else PEAK
        ph.notes.append(f"the demand falls to {COOL:g}: below the low watermark, the share steps back to 0")

    try:
        report = _timeline(
            dep,
            opts,
            scenario="cluster-overload",
            record=record,
            cluster=None,
            expect="shed",
            inject=inject,
            recover=recover,
        )
    finally:
        feeder = state.get("feeder")
        if feeder is not None:
            feeder.stop.set()
            feeder.join(5)
            try:
                feeder.put(-1)  # the ingress reports no load again
            except OSError:
                pass
    _judge(report, state["feeder"], report.fault_s, report.recover_s, opts.hold)
    return report


def _judge(report: Report, feeder: Feeder, t_fault: float, t_recover: float, hold: float) -> None:
    log = feeder.log
    during = [(t, d, k, x) for t, d, k, x in log if t_fault <= t < t_recover]
    settled = [x for t, _d, _k, x in during if t >= t_recover - hold / 3]
    after = [k for t, _d, k, _x in log if t >= t_recover]
    partial = [k for _t, _d, k, _x in during if 0.15 <= k <= 0.85]
    passed_low = next((t for t, _d, _k, x in during if x > LOW), None)
    first_shed = next((t for t, _d, k, _x in during if passed_low is not None and t > passed_low and k < 1.0), None)
    checks = [
        (
            "traffic left gradually (some answers kept, some shed)",
            bool(partial),
            f"{len(partial)} of {len(during)} load figures had 15-85 % of the home answers",
        ),
        (
            "the load settled under the high watermark",
            bool(settled) and mean(settled) < HIGH,
            f"mean {mean(settled):.2f} over the hold's last third" if settled else "no figures",
        ),
        (
            "traffic came back when the load fell",
            bool(after) and after[-1] >= 0.9,
            f"{after[-1] * 100:.0f} % of the home answers at the end" if after else "no figures",
        ),
        ("the ingress took every load figure", feeder.error is None, feeder.error or f"{len(log)} written"),
    ]
    if passed_low is not None:
        report.notes.append(
            f"the reported load passed {LOW:g} at {passed_low - t_fault:.1f}s; the first answer "
            f"shed followed {(first_shed - passed_low) if first_shed else float('nan'):.1f}s later"
        )
    seconds: dict[int, tuple] = {}
    for t, _d, k, x in log:
        seconds.setdefault(int((t - t_fault) // 2) * 2, (k, x))
    report.notes.append(
        "home answers kept / load, every 2 s from the fault: "
        + "  ".join(f"{s:+d}s {k * 100:.0f}%/{x:.2f}" for s, (k, x) in sorted(seconds.items()))
    )
    report.checks.extend({"name": n, "ok": ok, "detail": d} for n, ok, d in checks)
    report.passed = report.passed and all(ok for _n, ok, _d in checks)
