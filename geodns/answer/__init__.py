"""The answer path: the engine (RFC 1034/2308/4592 semantics over zones/), the fast path that
serves pre-encoded answers, the GSLB responder that asks gslb/ for a decision, and the query
counters.  dns/ hands it a query's bytes and sends back what it returns; dns/ imports nothing
from here.
"""
