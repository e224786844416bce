"""RFC 1035 master files read with dnspython's zone reader into geodns Records.

dnspython knows every record type (SVCB/HTTPS, CAA, TLSA ...), the generic
``\\# <length> <hex>`` form, ``$ORIGIN``, ``$TTL`` and ``$GENERATE``; this module
adds what a server operator needs on top:

- **Every problem, with its line.**  dnspython stops at the first error; we
  note it on the line of the token that caused it, skip to the end of that
  entry and read on, so one run lists everything to fix.  A problem inside a
  token (an unterminated quoted string, a ``)`` without ``(``) leaves nothing
  trustworthy to read after it, so reading stops there.
- **Our own checks** (``zone.check_records``): data outside the zone, CNAME and
  other data, SOA and NS at the apex; and types a zone must not hold (DNAME,
  OPT, meta types), TTLs above 2^31 - 1 (RFC 2181).
- **The origin** can come from the owner of a leading SOA written as an
  absolute name, as BIND's ``named-checkzone`` does with no ``$ORIGIN``.

Records leave here as wire rdata in canonical form (uncompressed, names in
lower case), which the answer engine copies verbatim.
"""

from __future__ import annotations

import gc
import os
import re
import threading
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tokenizer
import dns.zonefile

from ..dns.names import Name
from ..errors import Problem, ZoneError
from .tokens import TextTokenizer
from .zone import Record, Zone, check_records, type_name

A, NS, CNAME, SOA, PTR, MX, AAAA, SRV = 1, 2, 5, 6, 12, 15, 28, 33
_LINE_END = max(dns.tokenizer.EOF, dns.tokenizer.EOL)  # token types up to this end an entry
_WHITESPACE, _IDENTIFIER, _QUOTED_STRING = (
    dns.tokenizer.WHITESPACE,
    dns.tokenizer.IDENTIFIER,
    dns.tokenizer.QUOTED_STRING,
)
assert min(_WHITESPACE, dns.tokenizer.COMMENT, _IDENTIFIER, _QUOTED_STRING) > _LINE_END
MAX_TTL = (1 << 31) - 1  # RFC 2181 section 8
DIRECTIVES = ("$ORIGIN", "$TTL", "$GENERATE")

# Types that must never be zone data: reserved 0, DNAME (it would change how
# names are looked up, which this server does not do), OPT, and the
# query/meta range (RFC 6895 section 3.1).
FORBIDDEN = frozenset({0, 39, 41, *range(128, 256)})

# dnspython's words for some problems, in the words of the rest of geodns.
_REASONS = {
    "Text input is malformed": "malformed data",
    "expecting an identifier": "a field is missing or malformed",
    "Text input ended unexpectedly": "a field is missing",
    "A DNS label is empty": "empty label in a name",
    "A DNS label is > 63 octets long": "label longer than 63 octets",
    "A DNS name is > 255 octets long": "name longer than 255 octets",
    "DNS TTL value is not well-formed": "bad TTL",
    "DNS message is malformed": "generic data does not fit the type",
    "Non-hexadecimal digit found": "bad hex digit",
}
_TRAILING = re.compile(r'^expected EOL or EOF, got \d+ "(.*)"$')


_NAME_REASONS = frozenset(
    str(e()).rstrip(".") for e in (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong, dns.name.BadEscape)
)


def _name(name: dns.name.Name) -> Name:
    return tuple(map(bytes.lower, name.labels[:-1]))


def _targets(rdata: dns.rdata.Rdata) -> tuple[Name, ...]:
    """Names that additional-section processing follows (NS, MX and SRV targets; the CNAME target)."""
    rtype = rdata.rdtype
    if rtype in (NS, CNAME, SRV):
        target = rdata.target  # type: ignore[attr-defined]  # NS, CNAME and SRV rdata classes have it; Rdata does not declare it
    elif rtype == MX:
        target = rdata.exchange  # type: ignore[attr-defined]  # as above, for MX
    else:
        return ()
    return (_name(target),) if len(target) > 1 else ()  # '.': null MX, "no such service"


class _Tokens(TextTokenizer):
    """The zone's tokenizer, which can tell what entry a problem is in.

    Nothing is noted per token: reading 100,000 records must stay cheap.  When
    the reader fails, ``entry()`` reads the entry again from where it began
    (``entry_pos``) up to where reading stopped.
    """

    def entry(self) -> _Entry:
        again = TextTokenizer(self.text, self.filename)
        again.pos, again.line = self.entry_pos, self.entry_line
        entry = _Entry(self.entry_line)
        try:
            token = again.get(True, True)
            entry.blank_owner = token.ttype == _WHITESPACE
            while True:
                if token.ttype == _IDENTIFIER or token.ttype == _QUOTED_STRING:
                    entry.words.append(token.value)
                    entry.line = again.line
                entry.last = token.ttype
                if again.pos >= self.pos or token.ttype == dns.tokenizer.EOF:
                    break
                token = again.get()
        except dns.exception.DNSException:
            pass  # the tokenizer failed here the first time too
        if self.failed:
            entry.line = self.line_number
        return entry


@dataclass
class _Entry:
    """What messages say about the entry a problem is in.

    ``line`` is the line of the last word read (inside a record split over
    lines with parentheses, the line of the offending part); ``words`` are the
    words read so far; ``last`` the type of the last token read, which says
    whether the entry's line end has been read already.
    """

    line: int
    words: list[str] = field(default_factory=list)
    blank_owner: bool = False
    last: int = _WHITESPACE


class _Origin:
    """What dnspython's reader asks of a zone: where names are relative to."""

    def origin_information(self) -> tuple[dns.name.Name, bool, None]:
        # The reader drops names outside the zone origin silently; with the root as its
        # origin it drops nothing, and check_records reports what is outside the zone.
        return dns.name.root, False, None


@dataclass
class _Collector:
    """Takes each record from dnspython's reader (in place of a zone transaction)."""

    tokens: _Tokens
    source: str
    problems: list[Problem]
    origin: dns.name.Name | None
    records: list[Record] = field(default_factory=list)
    apex_failed: set[int] = field(default_factory=set)
    manager: _Origin = field(default_factory=_Origin)

    def check_put_rdataset(self, check: object) -> None:
        """The reader installs a CNAME check; check_records makes its own, with lines."""

    def add_unicode(self, attribute: str) -> None:
        """$UNICODE is not among the directives we allow."""

    def _set_origin(self, origin: dns.name.Name) -> None:
        if self.origin is None and not self.records:
            self.origin = origin  # the first $ORIGIN in force at the first record is the apex

    def add(self, name: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> None:
        line = self.tokens.entry_line
        rtype = int(rdata.rdtype)
        if rtype in FORBIDDEN:
            what = (
                "DNAME records are not supported"
                if rtype == 39
                else f"record type {type_name(rtype)} cannot appear in a zone"
            )
            self.problems.append(Problem(self.source, line, what))
            return
        if ttl > MAX_TTL:
            self.problems.append(Problem(self.source, line, f"TTL {ttl} is above {MAX_TTL}"))
            return
        if self.origin is None:
            if rtype != SOA:
                return  # reported once, at the end: no origin
            self.origin = name
        wire = rdata.to_wire(canonicalize=True)
        assert wire is not None  # no file given: to_wire returns the octets
        self.records.append(Record(_name(name), rtype, ttl, wire, _targets(rdata), line))


def _leading_soa_owner(text: str, source: str) -> dns.name.Name | None:
    """The owner of the first entry, if it is an SOA with an absolute owner name."""
    tok = TextTokenizer(text, source)
    try:
        token = tok.get()
        while token.is_eol() or token.is_comment():
            token = tok.get()
        if token.is_eof() or token.value.startswith("$") or not token.value.endswith("."):
            return None
        owner = dns.name.from_text(token.value)
        for _ in range(3):  # [ttl] [class] type
            word = tok.get()
            if word.is_eol_or_eof():
                return None
            if word.value.upper() == "SOA":
                return owner
    except dns.exception.DNSException:
        return None
    return None


def _entry_type(entry: _Entry) -> str | None:
    """The record type an entry names (the first word after the owner that is one), for messages."""
    for word in entry.words[0 if entry.blank_owner else 1 :]:
        try:
            dns.rdatatype.from_text(word)
        except (dns.exception.DNSException, ValueError):
            continue
        return word.upper()
    return None


def _reason(exc: dns.exception.DNSException, entry: _Entry, broken: bool, prefix: str) -> str:
    """dnspython's message for ``exc``, in geodns's words, with the entry it is about."""
    text = str(exc)
    if text.startswith(prefix):
        text = text[len(prefix) :]
    text = text.rstrip(".")
    words = entry.words
    if isinstance(exc, dns.zonefile.UnknownOrigin) or text == "The DNS zone file's origin is unknown":
        return "no zone origin: give $ORIGIN, or an SOA record whose owner is an absolute name"
    if broken:
        if text == "newline in quoted string":
            return "unterminated quoted string"
        if text == "Text input is malformed":  # the tokenizer's only bare error: ')' without '('
            return "unbalanced parentheses: ')' without '('"
        return text
    if text.startswith("zone file directive ") or text.startswith("Unknown zone file directive"):
        word = text.split("'")[1] if "'" in text else words[0]
        return (
            f"{word} is not supported: put the records in this file"
            if word == "$INCLUDE"
            else f"unknown directive '{word}'"
        )
    if text.startswith("unknown rdatatype"):
        word = text.split(" ", 2)[2]
        return f"{'bad TTL or ' if word[1:2].isdigit() else ''}unknown record type {word}"
    if text in _NAME_REASONS and len(words) == 1 and not entry.blank_owner:
        return f"bad owner name '{words[0]}': {_REASONS.get(text, text)}"
    if text == "RR class is not zone's class":
        return f"class {words[-1]} is not supported (only IN)"
    if text == "Missing default TTL value":
        return "no TTL: give this record a TTL, or put $TTL at the top of the file"
    if text == "the last used name is undefined":
        return "no owner name: the first record starts with white space"
    text = _REASONS.get(text, text)
    extra = _TRAILING.match(text)
    if extra:
        text = f"unexpected '{extra.group(1)}' after the record data"
    if text.startswith("caught exception "):  # dnspython wrapping a ValueError from rdata
        text = text.split(": ", 1)[-1]
    quoted = " ".join(words)
    if len(quoted) > 60:
        quoted = quoted[:57] + "..."
    if words and words[0].startswith("$"):
        return text if text == f"bad {words[0]}" else f"bad {words[0]}: {text} (in '{quoted}')"
    rtype = _entry_type(entry)
    if rtype is None:
        return f"missing record type (in '{quoted}')"
    what = f"bad {rtype} record"
    return f"{what}: {text} (in '{quoted}')" if quoted else f"{what}: {text}"


def parse_zone(text: str, source: str, origin: Name | None = None, default_ttl: int | None = None) -> Zone:
    """Parse a master file into a Zone; raises ZoneError listing every problem.

    ``origin`` fixes the zone's apex; without it the apex is the first
    $ORIGIN in force at the first record, or else the owner of a leading SOA
    written as an absolute name.  ``default_ttl`` acts as a $TTL at the top.
    """
    with _collector_paused:
        return _parse(text, source, origin, default_ttl)


class _CollectorPause:
    """Python's cycle collector off while zones are read.

    Reading 100,000 records makes a million objects, none of them in cycles;
    the collector would walk them over and over as they pile up (a fifth of
    the time to read a big zone).  Zones may be read on several threads at
    once (a reload reads them off the event loop), so the collector comes back
    on when the last reader is done, and only if it was on before the first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers = 0
        self._resume = False

    def __enter__(self) -> None:
        with self._lock:
            if self._readers == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._readers += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._readers -= 1
            if self._readers == 0 and self._resume:
                gc.enable()


_collector_paused = _CollectorPause()


def _parse(text: str, source: str, origin: Name | None, default_ttl: int | None) -> Zone:
    tokens = _Tokens(text, source)
    problems: list[Problem] = []
    apex = dns.name.Name([*origin, b""]) if origin is not None else _leading_soa_owner(text, source)
    collector = _Collector(tokens, source, problems, apex)
    reader = dns.zonefile.Reader(
        tokens,
        dns.rdataclass.IN,
        collector,  # type: ignore[arg-type]  # dnspython types a Transaction; the collector implements the calls the reader makes
        allow_directives=DIRECTIVES,
        default_ttl=default_ttl,
    )
    reader.current_origin = reader.last_name = apex
    while True:
        try:
            reader.read()
            break
        except dns.exception.DNSException as exc:
            prefix = f"{source}:{tokens.line_number}: "
            # A newline inside a broken quoted string was read before the error.
            quote = str(exc).endswith(": newline in quoted string")
            entry = tokens.entry()
            line = tokens.line_number - 1 if quote else entry.line
            problems.append(Problem(source, line, _reason(exc, entry, tokens.failed, prefix)))
            failed_type = _entry_type(entry)
            if failed_type in ("SOA", "NS"):
                collector.apex_failed.add(SOA if failed_type == "SOA" else NS)
            if isinstance(exc, dns.zonefile.UnknownOrigin) or tokens.failed:
                break
            if not _skip_entry(tokens, entry):
                break
    if collector.origin is None:
        if not any("no zone origin" in p.reason for p in problems):
            problems.append(
                Problem(source, 1, "no zone origin: give $ORIGIN, or an SOA record whose owner is an absolute name")
            )
    else:
        problems.extend(
            check_records(
                _name(collector.origin), source, collector.records, apex_failed=frozenset(collector.apex_failed)
            )
        )
    if problems:
        raise ZoneError(sorted(problems, key=lambda p: p.line or 0))
    assert collector.origin is not None
    return Zone.assemble(_name(collector.origin), source, collector.records)  # checked above


def _skip_entry(tokens: _Tokens, entry: _Entry) -> bool:
    """Read to the end of the entry that failed; False at the end of the input."""
    last = entry.last
    while last > _LINE_END:
        try:
            last = tokens.get().ttype
        except dns.exception.DNSException:
            return False
    return last != dns.tokenizer.EOF


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
        line = data[: e.start].count(b"\n") + 1
        raise ZoneError([Problem(source, line, "not UTF-8 text")]) from None
    return parse_zone(text, source, origin)
