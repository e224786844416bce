"""Reading a Prometheus /metrics page the way a scraper does (prometheus_client's own parser)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample, keyed by its name and its labels sorted."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(url: str) -> Samples:
    """GET ``url`` (a /metrics page) and parse it; an error status raises."""
    with urllib.request.urlopen(url, timeout=3) as response:
        return parse(response.read().decode())
