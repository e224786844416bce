"""The drill's own parts, without a deployment: the query it sends and how a report measures."""

from __future__ import annotations

from dnslib import DNSRecord

from geodns.tooling.dnsclient import Reply, build_query
from geodns.tooling.drill.recorder import Sample
from geodns.tooling.drill.report import Phases, analyse

CLUSTERS = {"a-1": {"addresses": ["203.0.113.10"]}, "e-1": {"addresses": ["198.51.100.10"]}}
A, E = ("203.0.113.10",), ("198.51.100.10",)


def test_query_carries_the_client_subnet():
    record = DNSRecord.parse(build_query("app.gslb.example.com.", "A", "81.2.69.142/31", qid=7))
    assert record.header.id == 7 and record.header.rd == 0
    assert str(record.q.qname) == "app.gslb.example.com."
    opt = record.ar[0]
    assert opt.rtype == 41
    ecs = opt.rdata[0]
    assert ecs.code == 8 and ecs.data == bytes([0, 1, 31, 0, 81, 2, 69, 142])


def sample(t: float, answer: tuple[str, ...], rcode: str = "NOERROR") -> Sample:
    return Sample(t, "SG", answer, rcode, (Reply("s1", rcode, answer, 1.0),))


def test_shift_measures_away_back_and_stale_answers():
    rows = [sample(t / 10, A) for t in range(0, 20)]  # baseline: a-1
    rows += [sample(2.0 + t / 10, A) for t in range(0, 8)]  # still a-1 for 0.7 s after the fault
    rows += [sample(2.8 + t / 10, E) for t in range(0, 22)]  # moved
    rows += [sample(5.0 + t / 10, E) for t in range(0, 3)]  # recovered at 5.0, back at 5.3
    rows += [sample(5.3 + t / 10, A) for t in range(0, 10)]
    phases = Phases("cluster-down", "app.", 2.0, 5.0, 6.3, "a-1", {"203.0.113.10"}, "shift", window=2.0)
    report = analyse(rows, phases, CLUSTERS)
    sg = report.clients[0]
    assert abs(sg.away_s - 0.8) < 1e-6 and abs(sg.back_s - 0.3) < 1e-6
    assert sg.stale_after_window == 0 and report.passed

    late = rows + [sample(4.5, A)]  # one stale answer after the window
    report = analyse(late, phases, CLUSTERS)
    assert report.clients[0].stale_after_window == 1 and not report.passed


def test_steady_counts_changes_and_failures():
    rows = [sample(t / 10, A) for t in range(0, 40)]
    rows[25] = sample(2.5, E)
    rows[30] = sample(3.0, (), "TIMEOUT")
    rows[31] = sample(3.1, ())  # NODATA: no address is an outage too
    phases = Phases("redis-down", "app.", 2.0, 3.5, 4.0, None, set(), "steady", window=2.0)
    report = analyse(rows, phases, CLUSTERS)
    assert report.clients[0].changed == 1
    assert report.failed_queries == 2 and not report.passed
    assert "x" in report.timeline[0]


def test_plot_draws_every_sample_in_its_cluster_colour_and_the_fault_window():
    import xml.etree.ElementTree as ET

    from geodns.tooling.drill.plot import svg

    rows = [sample(t / 10, A) for t in range(0, 20)]
    rows += [sample(2.0 + t / 10, (), "TIMEOUT") for t in range(0, 3)]
    rows += [sample(2.3 + t / 10, E) for t in range(0, 27)]
    rows += [sample(5.0 + t / 10, A) for t in range(0, 10)]
    phases = Phases("cluster-down", "app.", 2.0, 5.0, 6.0, "a-1", {"203.0.113.10"}, "shift", window=2.0)
    report = analyse(rows, phases, CLUSTERS)
    doc = ET.fromstring(svg(report, width=1000))  # well-formed, standalone
    ns = "{http://www.w3.org/2000/svg}"
    samples = [r for r in doc.iter(ns + "rect") if r.get("class") == "sample"]
    by_cluster = {name: sum(1 for r in samples if r.get("data-cluster") == name) for name in CLUSTERS}
    assert by_cluster == {"a-1": 30, "e-1": 27}
    assert len([g for g in doc.iter(ns + "g") if g.get("class") == "failed"]) == 3
    colours = {r.get("data-cluster"): r.get("fill") for r in samples}
    assert colours["a-1"] != colours["e-1"]
    # The shaded fault window spans fault to recovery on the time axis (70 px margin, 910 px for 6.9 s).
    fault = next(r for r in doc.iter(ns + "rect") if r.get("class") == "fault")
    scale = (1000 - 70 - 20) / report.duration_s
    assert abs(float(fault.get("x")) - (70 + 2.0 * scale)) < 0.1
    assert abs(float(fault.get("width")) - 3.0 * scale) < 0.1
    legend = [t.text for t in doc.iter(ns + "text") if t.get("class") == "legend"]
    assert legend[:2] == ["a-1", "e-1"] and "failed query" in legend
    assert not any(el.tag.endswith(("script", "image", "foreignObject")) for el in doc.iter())


def test_a_shift_drill_whose_baseline_never_used_the_target_fails():
    """cluster-slow on a cluster no client was sent to would otherwise pass on no evidence."""
    rows = [sample(t / 10, E) for t in range(0, 60)]  # e-1 all along; a-1 is the target
    phases = Phases("cluster-slow", "fast.", 2.0, 4.0, 6.0, "a-1", {"203.0.113.10"}, "shift", window=1.0)
    report = analyse(rows, phases, CLUSTERS)
    check = next(c for c in report.checks if c["name"].startswith("the baseline sent some client"))
    assert not check["ok"] and not report.passed
    assert check["detail"] == "no client was answered with it before the fault"
