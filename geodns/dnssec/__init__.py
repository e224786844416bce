"""DNSSEC: keys in BIND's files, online signing with signatures cached per RRset, compact denial.

``keys`` reads and writes key pairs; ``signer`` signs one zone's RRsets and keeps
the signatures; ``secure`` adds RRSIGs and denial NSECs to an answer; ``zones``
signs loaded zones at load; ``refresh`` re-signs before expiry.
"""
