"""Operator tooling, apart from the server: the local stack (``stack``), chaos drills
(``drill``), the simulated cluster ingress (``sim``) and the DNS client they share
(``dnsclient``, dnslib-based, asking as resolvers in several places would, with ECS).

Arrows run one way: ``drill`` uses ``stack`` (its topology and state file) and ``dnsclient``;
``stack`` uses ``dnsclient``; nothing in the server imports this package.
"""
