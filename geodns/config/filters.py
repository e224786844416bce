"""The policy filters' one declaration: each filter's config word and its properties.

A record's ``policy:`` is a list of these words (config checks them); gslb/filters.py
runs the function of the same name for each, and the rest of the server reads the
properties from here (which filters make the ECS scope, which draw at random, which
explain themselves).  It lives in config/, the lowest part both config/ and gslb/
import (gslb/ reads the config's typed model; config/ must not import gslb/:
tests/test_layers.py), so the words are declared once for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FilterInfo:
    """What the rest of the server needs to know about one filter."""

    reads_location: bool = False  # its output depends on where the client is: it makes the ECS scope
    draws: bool = False  # it draws from ctx.dice: ``policy.decision`` walks its paths
    notes: bool = False  # it takes a fourth argument, a list its reason goes into (``gslb/why.py``)


# Config word -> properties, in the order the README lists them.  A word here needs a function of
# that name in gslb/filters.py (importing gslb.filters fails without one).
DECLARED: Mapping[str, FilterInfo] = {
    "healthy": FilterInfo(),
    "geo": FilterInfo(reads_location=True, notes=True),
    "latency": FilterInfo(reads_location=True, notes=True),
    "shed": FilterInfo(draws=True),
    "weighted": FilterInfo(draws=True),
    "failover": FilterInfo(),
    "first_n": FilterInfo(),
}
