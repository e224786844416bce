"""The policy chain: which cluster endpoints answer a GSLB record for a client.

Pure functions over a snapshot (DESIGN.md, "gslb/"): ``health`` decides who
is up once per snapshot, ``filters`` holds the chain's steps, ``policy`` runs
a record's chain and picks the addresses.
"""

from .filters import FILTERS, Filter, estimate_rtt_ms
from .health import HealthView, Quorum
from .model import Candidate, Client, Context, Selection, Step
from .policy import contexts, ecs_scope, run_chain, select

__all__ = [
    "Candidate",
    "Client",
    "Context",
    "FILTERS",
    "Filter",
    "HealthView",
    "Quorum",
    "Selection",
    "Step",
    "contexts",
    "ecs_scope",
    "estimate_rtt_ms",
    "run_chain",
    "select",
]
