"""Why the chain decided what it did: one filter step in words, and one decision explained.

The one implementation behind every "why" an operator sees: the admin API's
``/explain`` (and so ``geodns explain``), the ``_geodns.<record>`` debug TXT
record and the status page's reason per place all call ``explain`` here.
Nothing of it runs on the query path: ``policy.select`` calls ``traced`` only
when given a trace list.  ``geo`` and ``latency`` phrase their own decision
(``filters.NOTED``: a branch deep inside them decides, and only they know
which); the other filters' reasons follow from their input and the context.
"""

from __future__ import annotations

from typing import Any

from .filters import FILTERS, NOTED
from .model import Candidate, Client, Context, Selection, Step


def traced(name: str, candidates: list[Candidate], client: Client, ctx: Context, trace: list) -> list[Candidate]:
    """Run filter ``name`` and append its ``Step``, with the reason, to ``trace``."""
    notes: list[str] = []
    if name in NOTED:
        out = FILTERS[name](candidates, client, ctx, notes)  # type: ignore[call-arg]  # NOTED filters take a fourth argument, the notes (config/filters.py)
    else:
        out = FILTERS[name](candidates, client, ctx)
        notes.append(_reason(name, candidates, out, ctx))
    trace.append(
        Step(
            name,
            tuple(c.cluster.name for c in candidates),
            tuple(c.cluster.name for c in out),
            "; ".join(n for n in notes if n),
        )
    )
    return out


def _reason(name: str, before: list[Candidate], after: list[Candidate], ctx: Context) -> str:
    if name == "healthy":
        kept = {c.cluster.name for c in after}
        dropped = [f"{c.cluster.name} {_state(ctx, c.cluster.name)}" for c in before if c.cluster.name not in kept]
        fewer = [
            f"{c.cluster.name} {len(c.endpoints)}/{len(c.cluster.endpoints)} endpoints"
            for c in after
            if len(c.endpoints) < len(c.cluster.endpoints)
        ]
        parts = ([f"dropped {', '.join(dropped)}"] if dropped else []) + ([f"kept {', '.join(fewer)}"] if fewer else [])
        return "; ".join(parts) or "all up"
    if name == "weighted":
        if len(before) < 2:
            return "one candidate or none: unchanged"
        active = [c for c in before if c.cluster.weight > 0]
        pool = active or before
        total = sum(c.cluster.weight for c in active) if active else len(before)
        # the first place's odds: weight / total (standby clusters, weight 0, only when no other is left)
        odds = [(c.cluster.name, c.cluster.weight, (c.cluster.weight if active else 1) / total) for c in pool]
        shares = ", ".join(f"{who} w{weight} {100 * share:.0f}%" for who, weight, share in odds)
        standby = [c.cluster.name for c in before if active and c.cluster.weight == 0]
        return (
            f"random order by weight, first place: {shares}"
            + (" (all standby: uniform)" if not active else "")
            + (f"; standby {', '.join(standby)} last" if standby else "")
        )
    if name == "failover":
        if not after:
            return "no candidate with an endpoint left"
        best = after[0].cluster
        return f"{best.name} has the best priority ({best.priority}, then record order)"
    if name == "first_n":
        return f"keep the first {ctx.record.answers}"
    if name == "shed":
        if len(before) < 2:
            return "one candidate or none: unchanged"
        states = ctx.load.states
        shedding = [
            (c.cluster.name, states[c.cluster.name].share)
            for c in before
            if c.cluster.name in states and states[c.cluster.name].share > 0
        ]
        if not shedding:
            return "no cluster above its low watermark: unchanged"
        return "sheds " + ", ".join(
            f"{who} {100 * share:.0f}% of new answers" if share < 1 else f"{who} all (over high)"
            for who, share in shedding
        )
    return ""


def _state(ctx: Context, cluster: str) -> str:
    try:
        return ctx.health.cluster_state(cluster)
    except KeyError:
        return "unknown"


def family_lost(family: int, before: tuple[str, ...], after: tuple[str, ...]) -> str:
    lost = ", ".join(c for c in before if c not in after)
    return f"{lost}: no IPv{family} endpoint up, the chain runs again without it"


FALLBACK_WHY = "the chain left nothing: the record's fallback answers (health ignored)"


def steps(ctx: Context, client: Client, family: int) -> tuple[Selection, list[dict[str, Any]]]:
    """``policy.select``'s selection for ``client`` and its filter steps, each with its reason."""
    from .policy import select  # policy imports this module

    trace: list[Step] = []
    selection = select(ctx, client, family, trace)
    return selection, [
        {
            "filter": s.filter,
            "in": list(s.before),
            "out": list(s.after),
            "dropped": [c for c in s.before if c not in s.after],
            "why": s.why,
        }
        for s in trace
    ]


def explain(ctx: Context, client: Client, family: int) -> dict[str, Any]:
    """One decision for ``client``, step by step: what ``policy.select`` does, with each step's reason.

    With ``weighted`` in the chain this is one draw (``ctx``'s dice): the step's
    reason gives the odds, its ``out`` one random order.
    """
    selection, listed = steps(ctx, client, family)
    return {
        "steps": listed,
        "answer": [str(a) for a in selection.addresses],
        "clusters": list(selection.clusters),
        "fallback": selection.fallback,
        "scope": selection.scope,
    }
