"""Record data: presentation text to uncompressed wire octets, once, at load.

Each supported type has one small encoder.  Names inside rdata are written
uncompressed (geodns.names.to_wire) because the answer engine copies these
bytes verbatim; compressing them would tie them to one message.  Encoders
also return the names that additional-section processing follows, so nobody
parses rdata again on the query path.

Anything else can still be served through the RFC 3597 generic form
``TYPE65 \\# 3 010203``; for types we know, generic rdata is checked and
normalised as if it had been written in the type's own syntax.
"""
from __future__ import annotations

import ipaddress
import re
import struct
from typing import Callable, Sequence

from ..names import Name, NameError_, from_text, to_wire
from .lexer import Token, decode_string

A, NS, CNAME, SOA, PTR, HINFO, MX, TXT, AAAA, SRV, CAA = 1, 2, 5, 6, 12, 13, 15, 16, 28, 33, 257

TYPES: dict[str, int] = {
    "A": A, "NS": NS, "CNAME": CNAME, "SOA": SOA, "PTR": PTR, "HINFO": HINFO,
    "MX": MX, "TXT": TXT, "AAAA": AAAA, "SRV": SRV, "CAA": CAA,
}
_NAMES: dict[int, str] = {v: k for k, v in TYPES.items()}

# Types people may write that we do not parse; named so the message can point
# at the generic form instead of claiming the type does not exist.
UNSUPPORTED: dict[str, int] = {
    "MD": 3, "MF": 4, "MB": 7, "MG": 8, "MR": 9, "NULL": 10, "WKS": 11, "MINFO": 14,
    "RP": 17, "AFSDB": 18, "LOC": 29, "NAPTR": 35, "KX": 36, "CERT": 37, "DNAME": 39,
    "DS": 43, "SSHFP": 44, "IPSECKEY": 45, "RRSIG": 46, "NSEC": 47, "DNSKEY": 48,
    "DHCID": 49, "NSEC3": 50, "NSEC3PARAM": 51, "TLSA": 52, "SMIMEA": 53, "CDS": 59,
    "CDNSKEY": 60, "OPENPGPKEY": 61, "CSYNC": 62, "ZONEMD": 63, "SVCB": 64, "HTTPS": 65,
    "SPF": 99, "URI": 256,
}

# Types that must never be zone data: reserved 0, DNAME (it would change how
# names are looked up, which this server does not do), OPT, and the
# query/meta range (RFC 6895 section 3.1).
FORBIDDEN = frozenset({0, 39, 41, *range(128, 256)})

MAX_RDATA = 65535
_TAG = re.compile(r"^[A-Za-z0-9]{1,15}$")


class RdataError(ValueError):
    """Rdata that cannot be encoded; ``token`` is where, when one token is to blame."""

    def __init__(self, reason: str, token: Token | None = None):
        super().__init__(reason)
        self.reason = reason
        self.token = token


def type_name(rtype: int) -> str:
    return _NAMES.get(rtype) or f"TYPE{rtype}"


Encoded = tuple[bytes, tuple[Name, ...]]


def encode(rtype: int, tokens: Sequence[Token], origin: Name | None) -> Encoded:
    """Encode one record's rdata tokens for ``rtype``; raises RdataError."""
    if tokens and tokens[0].text == "\\#" and not tokens[0].quoted:
        data = _generic(tokens)
        if rtype in _DECODERS:
            return _DECODERS[rtype](data)
        return data, ()
    encoder = _ENCODERS.get(rtype)
    if encoder is None:
        raise RdataError(f"{type_name(rtype)} needs generic rdata: '\\# <length> <hex>'")
    data, targets = encoder(tokens, origin)
    if len(data) > MAX_RDATA:
        raise RdataError(f"{type_name(rtype)} rdata longer than {MAX_RDATA} octets")
    return data, targets


# --- fields -----------------------------------------------------------------

def _word(token: Token, what: str) -> str:
    if token.quoted:
        raise RdataError(f"{what} cannot be a quoted string", token)
    return token.text


def _name(token: Token, origin: Name | None, what: str) -> Name:
    text = _word(token, what)
    try:
        return from_text(text, origin)
    except NameError_ as e:
        raise RdataError(f"bad {what} '{text}': {e}", token) from None


def _number(token: Token, what: str, bits: int) -> int:
    text = _word(token, what)
    # isascii + isdigit: int() would also take '+5', '1_0' and non-ASCII digits.
    # The length cap also keeps int() clear of its huge-string guard.
    if not (text.isascii() and text.isdigit()) or len(text) > 20 or int(text) >= 1 << bits:
        raise RdataError(f"bad {what} '{text}' (0 to {(1 << bits) - 1})", token)
    return int(text)


def _string(token: Token, what: str) -> bytes:
    """A <character-string>: one length octet, then at most 255 octets."""
    try:
        data = decode_string(token.text)
    except ValueError as e:
        raise RdataError(f"bad {what}: {e}", token) from None
    if len(data) > 255:
        raise RdataError(f"{what} longer than 255 octets", token)
    return bytes((len(data),)) + data


def _count(tokens: Sequence[Token], n: int, message: str) -> None:
    if len(tokens) != n:
        raise RdataError(message, tokens[n] if len(tokens) > n else None)


# --- encoders from presentation text ----------------------------------------

def _a(tokens: Sequence[Token], origin: Name | None) -> Encoded:
    _count(tokens, 1, "A needs one IPv4 address")
    text = _word(tokens[0], "IPv4 address")
    try:
        return ipaddress.IPv4Address(text).packed, ()
    except ValueError:
        raise RdataError(f"bad IPv4 address '{text}'", tokens[0]) from None


def _aaaa(tokens: Sequence[Token], origin: Name | None) -> Encoded:
    _count(tokens, 1, "AAAA needs one IPv6 address")
    text = _word(tokens[0], "IPv6 address")
    try:
        if "%" in text:  # a scope id means nothing outside one host
            raise ValueError
        return ipaddress.IPv6Address(text).packed, ()
    except ValueError:
        raise RdataError(f"bad IPv6 address '{text}'", tokens[0]) from None


def _single_name(label: str, follow: bool) -> Callable[[Sequence[Token], Name | None], Encoded]:
    def encoder(tokens: Sequence[Token], origin: Name | None) -> Encoded:
        _count(tokens, 1, f"{label} needs one domain name")
        name = _name(tokens[0], origin, f"{label} target")
        return to_wire(name), ((name,) if follow else ())
    return encoder


def _mx(tokens: Sequence[Token], origin: Name | None) -> Encoded:
    _count(tokens, 2, "MX needs a preference and an exchange")
    preference = _number(tokens[0], "MX preference", 16)
    exchange = _name(tokens[1], origin, "MX exchange")
    # '.' is a null MX (RFC 7505): no mail here, nothing to add.
    return struct.pack("!H", preference) + to_wire(exchange), ((exchange,) if exchange else ())


def _srv(tokens: Sequence[Token], origin: Name | None) -> Encoded:
    _count(tokens, 4, "SRV needs priority, weight, port and target")
    priority = _number(tokens[0], "SRV priority", 16)
    weight = _number(tokens[1], "SRV weight", 16)
    port = _number(tokens[2], "SRV port", 16)
    target = _name(tokens[3], origin, "SRV target")
    # '.' means "no such service here": nothing to add to the additional section.
    return struct.pack("!HHH", priority, weight, port) + to_wire(target), ((target,) if target else ())


def _soa(tokens: Sequence[Token], origin: Name | None) -> Encoded:
    _count(tokens, 7, "SOA needs mname, rname, serial, refresh, retry, expire and minimum")
    mname = _name(tokens[0], origin, "SOA mname")
    rname = _name(tokens[1], origin, "SOA rname")
    serial = _number(tokens[2], "SOA serial", 32)
    timers = []
    for token, what in zip(tokens[3:], ("refresh", "retry", "expire", "minimum")):
        try:
            timers.append(parse_ttl(_word(token, f"SOA {what}")))
        except ValueError as e:
            raise RdataError(f"bad SOA {what}: {e}", token) from None
    return to_wire(mname) + to_wire(rname) + struct.pack("!5I", serial, *timers), ()


def _txt(tokens: Sequence[Token], origin: Name | None) -> Encoded:
    if not tokens:
        raise RdataError("TXT needs at least one string")
    return b"".join(_string(t, "TXT string") for t in tokens), ()


def _hinfo(tokens: Sequence[Token], origin: Name | None) -> Encoded:
    _count(tokens, 2, "HINFO needs a CPU and an OS string")
    return _string(tokens[0], "HINFO CPU") + _string(tokens[1], "HINFO OS"), ()


def _caa(tokens: Sequence[Token], origin: Name | None) -> Encoded:
    _count(tokens, 3, "CAA needs flags, a tag and a value")
    flags = _number(tokens[0], "CAA flags", 8)
    tag = _word(tokens[1], "CAA tag")
    if not _TAG.match(tag):
        raise RdataError(f"bad CAA tag '{tag}' (1 to 15 letters and digits)", tokens[1])
    try:
        value = decode_string(tokens[2].text)
    except ValueError as e:
        raise RdataError(f"bad CAA value: {e}", tokens[2]) from None
    return bytes((flags, len(tag))) + tag.encode("ascii") + value, ()


_ENCODERS: dict[int, Callable[[Sequence[Token], Name | None], Encoded]] = {
    A: _a, AAAA: _aaaa, NS: _single_name("NS", True), CNAME: _single_name("CNAME", True),
    PTR: _single_name("PTR", False), MX: _mx, SRV: _srv, SOA: _soa, TXT: _txt,
    HINFO: _hinfo, CAA: _caa,
}


# --- TTLs -------------------------------------------------------------------

MAX_TTL = (1 << 31) - 1  # RFC 2181 section 8
_TTL = re.compile(r"^(?:[0-9]+[smhdw])+$", re.IGNORECASE)
_UNIT = re.compile(r"([0-9]+)([smhdw])", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_ttl(text: str) -> int:
    """Seconds from '300' or BIND-style units ('1h', '2d', '1w30m'); ValueError if bad."""
    if len(text) > 24:
        raise ValueError(f"TTL '{text[:24]}...' is too long")
    if text.isascii() and text.isdigit():
        value = int(text)
    elif _TTL.match(text):
        value = sum(int(n) * _SECONDS[u.lower()] for n, u in _UNIT.findall(text))
    else:
        raise ValueError(f"bad TTL '{text}'")
    if value > MAX_TTL:
        raise ValueError(f"TTL '{text}' is above {MAX_TTL}")
    return value


# --- RFC 3597 generic rdata -------------------------------------------------

def _generic(tokens: Sequence[Token]) -> bytes:
    if len(tokens) < 2:
        raise RdataError("generic rdata needs a length after '\\#'", tokens[0])
    length_token = tokens[1]
    if not (length_token.text.isascii() and length_token.text.isdigit()) or length_token.quoted:
        raise RdataError(f"bad generic rdata length '{length_token.text}'", length_token)
    length = int(length_token.text)
    hex_text = "".join(_word(t, "generic rdata") for t in tokens[2:])
    try:
        if not hex_text.isascii():
            raise ValueError
        data = bytes.fromhex(hex_text)
    except ValueError:
        raise RdataError("bad hex in generic rdata", tokens[2]) from None
    if len(data) != length:
        raise RdataError(f"generic rdata length {length} does not match {len(data)} octets of data",
                         length_token)
    if length > MAX_RDATA:
        raise RdataError(f"generic rdata longer than {MAX_RDATA} octets", length_token)
    return data


def _read_name(data: bytes, at: int, what: str) -> tuple[Name, int]:
    """An uncompressed wire name starting at ``at``; returns it lower-cased and the next offset."""
    labels: list[bytes] = []
    size = 1
    while True:
        if at >= len(data):
            raise RdataError(f"{what} runs past the end of the rdata")
        length = data[at]
        if length == 0:
            return tuple(labels), at + 1
        if length > 63:
            raise RdataError(f"{what} uses a compression pointer or a bad label length")
        labels.append(data[at + 1:at + 1 + length].lower())
        if len(labels[-1]) != length:
            raise RdataError(f"{what} runs past the end of the rdata")
        at += 1 + length
        size += 1 + length
        if size > 255:
            raise RdataError(f"{what} is longer than 255 octets")


def _wire_names(fixed: int, count: int, label: str, follow: bool) -> Callable[[bytes], Encoded]:
    """Decoder for rdata that is ``fixed`` leading octets followed by ``count`` names."""
    def decode(data: bytes) -> Encoded:
        at = fixed
        if len(data) < fixed:
            raise RdataError(f"generic {label} rdata is too short")
        names = []
        for _ in range(count):
            name, at = _read_name(data, at, f"name in generic {label} rdata")
            names.append(name)
        trailing = len(data) - at
        if label == "SOA":
            if trailing != 20:
                raise RdataError("generic SOA rdata needs 20 octets of numbers after the names")
        elif trailing:
            raise RdataError(f"generic {label} rdata has {trailing} octets after the name")
        canonical = data[:fixed] + b"".join(to_wire(n) for n in names) + data[at:]
        targets = tuple(n for n in names if n) if follow else ()
        return canonical, targets
    return decode


def _wire_length(label: str, size: int) -> Callable[[bytes], Encoded]:
    def decode(data: bytes) -> Encoded:
        if len(data) != size:
            raise RdataError(f"generic {label} rdata must be {size} octets, not {len(data)}")
        return data, ()
    return decode


def _wire_strings(label: str, minimum: int, maximum: int | None) -> Callable[[bytes], Encoded]:
    def decode(data: bytes) -> Encoded:
        at = count = 0
        while at < len(data):
            at += 1 + data[at]
            count += 1
        if at != len(data):
            raise RdataError(f"generic {label} rdata has a string running past the end")
        if count < minimum or (maximum is not None and count > maximum):
            raise RdataError(f"generic {label} rdata has {count} strings")
        return data, ()
    return decode


def _wire_caa(data: bytes) -> Encoded:
    if len(data) < 2 or data[1] == 0 or len(data) < 2 + data[1]:
        raise RdataError("generic CAA rdata has a bad tag length")
    if not _TAG.match(data[2:2 + data[1]].decode("latin-1")):
        raise RdataError("generic CAA rdata has a bad tag")
    return data, ()


_DECODERS: dict[int, Callable[[bytes], Encoded]] = {
    A: _wire_length("A", 4), AAAA: _wire_length("AAAA", 16),
    NS: _wire_names(0, 1, "NS", True), CNAME: _wire_names(0, 1, "CNAME", True),
    PTR: _wire_names(0, 1, "PTR", False), MX: _wire_names(2, 1, "MX", True),
    SRV: _wire_names(6, 1, "SRV", True), SOA: _wire_names(0, 2, "SOA", False),
    TXT: _wire_strings("TXT", 1, None), HINFO: _wire_strings("HINFO", 2, 2), CAA: _wire_caa,
}
