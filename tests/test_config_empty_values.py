"""An empty value where a required one belongs is a problem, not a silently dropped entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from geodns.config.load import config_from_text
from geodns.errors import ConfigError

BASE = """\
regions:
  eu: {lat: 53.3, lon: -6.3, continent: EU}
"""


def problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_text(BASE + text, "geodns.yaml", tmp_path)
    return [str(p) for p in info.value.problems]


def test_an_endpoint_with_an_empty_address_is_reported(tmp_path: Path) -> None:
    found = problems("clusters:\n  c1: {region: eu, endpoints: [{address: }]}\n", tmp_path)
    assert found == ["geodns.yaml:4: clusters.c1.endpoints[0]: missing address"]


def test_a_geoip_network_with_an_empty_cidr_is_reported(tmp_path: Path) -> None:
    found = problems("geoip:\n  networks:\n    - {cidr: , region: eu}\n", tmp_path)
    assert found == ["geodns.yaml:5: geoip.networks[0]: needs both cidr and region"]


def test_absent_values_are_still_reported_once(tmp_path: Path) -> None:
    assert problems("clusters:\n  c1: {region: eu, endpoints: [{weight: 5}]}\n", tmp_path) == [
        "geodns.yaml:4: clusters.c1.endpoints[0]: missing address"
    ]
    assert problems("geoip:\n  networks:\n    - {region: eu}\n", tmp_path) == [
        "geodns.yaml:5: geoip.networks[0]: needs both cidr and region"
    ]
