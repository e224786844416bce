"""The companion health checker: probes endpoints, applies rise/fall, writes observations.

Modules: ``target`` (where to dial), ``probe`` (one HTTP/HTTPS/TCP probe), ``state``
(pure rise/fall hysteresis and RTT smoothing), ``checker`` (scheduling,
reconciliation, reporting) and ``command`` (``geodns check``).

The check options themselves are parsed by ``geodns.config.checks``: the config
sits below the checker, which only reads the checked values.
"""
