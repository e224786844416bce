"""Discovery: clusters publish their own services into geodns.

``agent`` (``geodns agent``, one per Kubernetes cluster) watches Services, Ingresses and Gateways
and keeps this cluster's lease and registrations in the store; ``records`` turns the leases in a
snapshot into GSLB records and clusters for the DNS side.  Only ``agent`` imports the Kubernetes
client, so the DNS side loads nothing of it.
"""
