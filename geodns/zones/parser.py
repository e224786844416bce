"""RFC 1035 master files to Zones, reporting every problem with its line.

The parser reads the whole file even after an error, so that one run shows
the user everything to fix.  It keeps going with the best guess it has (the
owner of a broken line still counts as "the previous owner") so that one
mistake does not drag a trail of invented follow-on errors behind it.
"""
from __future__ import annotations

import os
import re
import struct

from ..errors import Problem, ZoneError
from ..names import Name, NameError_, from_text
from .lexer import Entry, Token, tokenize
from .rdata import FORBIDDEN, SOA, TYPES, UNSUPPORTED, RdataError, encode, parse_ttl, type_name
from .zone import Record, Zone, check_records

_CLASSES = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255}
_CLASS_NUMBER = re.compile(r"^CLASS([0-9]{1,5})$")
_TYPE_NUMBER = re.compile(r"^TYPE([0-9]{1,5})$")


class _Fail(Exception):
    """One problem with the current entry; the entry is dropped."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.line = line


def parse_zone(text: str, source: str, origin: Name | None = None,
               default_ttl: int | None = None) -> Zone:
    """Parse a master file into a Zone; raises ZoneError listing every problem.

    ``origin`` fixes the zone's apex; without it the apex is the first
    $ORIGIN in force at the first record, or else the owner of the SOA
    (which must then be absolute).  ``default_ttl`` acts as a $TTL at the top.
    """
    parser = _Parser(source, origin, default_ttl)
    for entry in tokenize(text, source, parser.problems):
        parser.entry(entry)
    return parser.finish()


def load_zone(path: str | os.PathLike[str], origin: Name | None = None) -> Zone:
    """Read and parse one zone file; an unreadable file is a ZoneError naming it."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ZoneError([Problem(source, None, f"cannot read zone file: {e.strerror or e}")]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ZoneError([Problem(source, line, "not UTF-8 text")]) from None
    return parse_zone(text, source, origin)


class _Parser:
    def __init__(self, source: str, origin: Name | None, default_ttl: int | None):
        self.source = source
        self.problems: list[Problem] = []
        self.records: list[Record] = []
        self.zone_origin = origin          # the apex, once known
        self.origin = origin               # what relative names are relative to ($ORIGIN)
        self.default_ttl = default_ttl     # $TTL
        self.last_ttl: int | None = None   # RFC 1035: the last TTL stated, when no $TTL
        self.owner: Name | None = None     # for lines that start with white space
        self.owner_broken = False          # the last owner written did not parse
        self.apex_failed: set[int] = set() # types whose apex records did not parse
        self.saw_soa = False

    def entry(self, entry: Entry) -> None:
        first = entry.tokens[0]
        try:
            if not entry.ok:
                if not entry.blank_owner and not first.text.startswith("$"):
                    self._set_owner(first)
                return
            if not entry.blank_owner and first.text.startswith("$") and not first.quoted:
                self._directive(entry)
            else:
                self._record(entry)
        except _Fail as fail:
            if entry.ok:
                self.problems.append(Problem(self.source, fail.line or entry.line, fail.reason))

    def finish(self) -> Zone:
        problems = self.problems
        if self.zone_origin is None:
            if not self.saw_soa:
                problems.append(Problem(self.source, 1, "no zone origin: give $ORIGIN, or an SOA record "
                                                        "whose owner is an absolute name"))
        else:
            problems.extend(check_records(self.zone_origin, self.source, self.records,
                                          apex_failed=frozenset(self.apex_failed)))
        if problems:
            raise ZoneError(sorted(problems, key=lambda p: p.line or 0))
        assert self.zone_origin is not None
        return Zone.build(self.zone_origin, self.source, self.records)

    # --- directives -----------------------------------------------------------

    def _directive(self, entry: Entry) -> None:
        word, args = entry.tokens[0].text.upper(), entry.tokens[1:]
        if word == "$ORIGIN":
            if len(args) != 1:
                raise _Fail("$ORIGIN needs one domain name")
            try:
                self.origin = from_text(args[0].text, self.origin)
            except NameError_ as e:
                raise _Fail(f"bad $ORIGIN: {e}") from None
        elif word == "$TTL":
            if len(args) != 1:
                raise _Fail("$TTL needs one value")
            try:
                self.default_ttl = parse_ttl(args[0].text)
            except ValueError as e:
                raise _Fail(str(e)) from None
        elif word == "$INCLUDE":
            raise _Fail("$INCLUDE is not supported: put the records in this file")
        else:
            raise _Fail(f"unknown directive '{entry.tokens[0].text}'")

    # --- records ----------------------------------------------------------------

    def _record(self, entry: Entry) -> None:
        # Looked for before anything can fail, so that a broken SOA line is not
        # also reported as "no zone origin".
        if any(t.text.upper() == "SOA" and not t.quoted for t in entry.tokens[:4]):
            self.saw_soa = True
        if entry.blank_owner:
            if self.owner_broken:
                return  # already reported on the line that named the owner
            if self.owner is None:
                raise _Fail("no owner name: the first record starts with white space")
            owner, rest = self.owner, entry.tokens
        else:
            owner, rest = self._set_owner(entry.tokens[0]), entry.tokens[1:]

        ttl: int | None = None
        seen_class = False
        i = 0
        while i < len(rest) and not rest[i].quoted:
            token = rest[i]
            word = token.text.upper()
            if word[:1].isdigit():
                if ttl is not None:
                    raise _Fail("TTL given twice", token.line)
                try:
                    ttl = parse_ttl(token.text)
                except ValueError as e:
                    raise _Fail(str(e), token.line) from None
            elif word in _CLASSES or _CLASS_NUMBER.match(word):
                if seen_class:
                    raise _Fail("class given twice", token.line)
                seen_class = True
                match = _CLASS_NUMBER.match(word)
                if (int(match.group(1)) if match else _CLASSES[word]) != 1:
                    raise _Fail(f"class {token.text} is not supported (only IN)", token.line)
            else:
                break
            i += 1
        if i == len(rest):
            raise _Fail("missing record type")
        rtype = self._rtype(rest[i])

        if self.zone_origin is None:
            if self.origin is not None:
                self.zone_origin = self.origin
            elif rtype == SOA:
                self.zone_origin = self.origin = owner

        try:
            rdata, targets = encode(rtype, rest[i + 1:], self.origin)
        except RdataError as e:
            if owner == self.zone_origin:
                self.apex_failed.add(rtype)
            raise _Fail(e.reason, e.token.line if e.token else None) from None

        if ttl is not None:
            self.last_ttl = ttl
        elif self.default_ttl is not None:
            ttl = self.default_ttl
        elif self.last_ttl is not None:
            ttl = self.last_ttl
        elif rtype == SOA:
            # No $TTL and nothing stated yet: the SOA minimum, as BIND does,
            # and it then stands as the last stated TTL (RFC 1035) for what follows.
            ttl = self.last_ttl = struct.unpack("!I", rdata[-4:])[0]
        else:
            raise _Fail("no TTL: give this record a TTL, or put $TTL at the top of the file")
        self.records.append(Record(owner, rtype, ttl, rdata, targets, entry.line))

    def _set_owner(self, token: Token) -> Name:
        """Parse an owner and remember it (or that it was broken) for blank-owner lines."""
        self.owner, self.owner_broken = None, True
        self.owner = self._owner(token)
        self.owner_broken = False
        return self.owner

    def _owner(self, token: Token) -> Name:
        if token.quoted:
            raise _Fail("an owner name cannot be a quoted string", token.line)
        if token.text == "@" and self.origin is None:
            raise _Fail("'@' needs an origin: add $ORIGIN, or write the SOA owner as an absolute name",
                        token.line)
        try:
            return from_text(token.text, self.origin)
        except NameError_ as e:
            raise _Fail(f"bad owner name: {e}", token.line) from None

    @staticmethod
    def _rtype(token: Token) -> int:
        word = token.text.upper()
        match = _TYPE_NUMBER.match(word)
        if token.quoted:
            raise _Fail(f"unknown record type '{token.text}'", token.line)
        if word in TYPES:
            rtype = TYPES[word]
        elif match:
            rtype = int(match.group(1))
            if rtype > 65535:
                raise _Fail(f"bad record type '{token.text}' (TYPE0 to TYPE65535)", token.line)
        elif word in UNSUPPORTED:
            rtype = UNSUPPORTED[word]
            if rtype not in FORBIDDEN:
                raise _Fail(f"record type {word} is not supported; write it in the generic form "
                            f"'TYPE{rtype} \\# <length> <hex>'", token.line)
        else:
            raise _Fail(f"unknown record type '{token.text}'", token.line)
        if rtype == 39:
            raise _Fail("DNAME records are not supported", token.line)
        if rtype in FORBIDDEN:
            raise _Fail(f"record type {type_name(rtype)} cannot appear in a zone", token.line)
        return rtype

