"""Chaos drills (``geodns drill SCENARIO``): inject a fault, watch the answers, report.

``recorder`` samples (asking through ``tooling.dnsclient``, as resolvers in several places would)
at a steady rate, ``target`` acts on the deployment (ingress control URLs, the
stack's processes), ``scenarios`` say what to break, ``report`` measures.
"""
