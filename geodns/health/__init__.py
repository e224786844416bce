"""The companion health checker: probes endpoints, applies rise/fall, writes observations.

Modules: ``options`` (check option parsing shared with the config loader),
``target`` (where to dial), ``probe`` (one HTTP/HTTPS/TCP probe), ``state``
(pure rise/fall hysteresis and RTT smoothing), ``checker`` (scheduling,
reconciliation, reporting) and ``command`` (``geodns check``).

This package's ``__init__`` imports nothing on purpose: ``geodns.config``
imports ``options`` while it is itself being imported.
"""
