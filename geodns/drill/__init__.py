"""Chaos drills (``geodns drill SCENARIO``): inject a fault, watch the answers, report.

``dnsclient`` asks like resolvers in several places (ECS), ``recorder`` samples
at a steady rate, ``target`` acts on the deployment (ingress control URLs, the
stack's processes), ``scenarios`` say what to break, ``report`` measures.
"""
