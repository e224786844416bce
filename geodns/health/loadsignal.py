"""Reading a load figure out of a health response: a JSON field or a Prometheus-text metric.

Configured per cluster check (``load_json: status.load`` or ``load_metric:
ingress_load{pool="web"}``).  The figure is a fraction of capacity (1 = full),
checked as every load reading is (``state.table.check_load``).  Anything that
does not yield one (not JSON, no such field, not a number, out of range) is
``None``: the load is unknown, and the endpoint's health is not affected.
"""

from __future__ import annotations

import json
import math
import re

from ..config.model import CheckSpec
from ..state.table import check_load

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def read_load(body: bytes, spec: CheckSpec) -> float | None:
    """The load ``spec`` says where to find in ``body``; None when it is not there or not a load."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if spec.load_json is not None:
        return from_json(text, spec.load_json)
    if spec.load_metric is not None:
        return from_prometheus(text, spec.load_metric)
    return None


def _valid(value: object) -> float | None:
    try:
        return check_load(value)
    except ValueError:
        return None


def from_json(text: str, path: str) -> float | None:
    """``path`` (dotted; list items by index) in a JSON document; a number, or a string holding one."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return _valid(value)


def _labels(text: str | None) -> dict[str, str]:
    return {} if not text else dict(_LABEL.findall(text[1:-1]))


def from_prometheus(text: str, metric: str) -> float | None:
    """The first sample of ``metric`` (with at least the labels it names) in Prometheus text format."""
    wanted = _SAMPLE.fullmatch(metric + " 0")
    if wanted is None:
        return None
    name, want = wanted.group(1), _labels(wanted.group(2))
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        sample = _SAMPLE.match(line)
        if sample is None or sample.group(1) != name:
            continue
        labels = _labels(sample.group(2))
        if any(labels.get(k) != v for k, v in want.items()):
            continue
        try:
            value = float(sample.group(3))
        except ValueError:
            return None
        return _valid(value) if math.isfinite(value) else None
    return None
