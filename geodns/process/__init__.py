"""Process plumbing: start-up, signals and reload (``server``), the supervisor and its workers
(``workers``, ``worker``, ``claim``, ``pipe``) and the event loop runner (``runloop``).

This part wires the others together; nothing below it imports it.
"""
