"""The local topology as plain processes on loopback (``geodns stack``), for laptops and CI.

``topology`` lays out ports and renders the configs, ``procs`` starts and stops
processes by PID, ``command`` is the CLI that runs it all until Ctrl-C.  The
stack writes a state file (``stack.json``) that ``geodns drill`` reads to act on it.
"""
