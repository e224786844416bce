"""Domain names as the rest of geodns sees them.

A name is a tuple of lower-cased label bytes, leftmost label first; the root
is the empty tuple.  Tuples make suffix tests and dictionary look-ups cheap and
exact, which is what the query path does most.  Case is folded here once so
that nothing downstream compares case-insensitively; the question's original
case is kept separately, as raw bytes, for echoing (0x20 clients).
"""

from __future__ import annotations

Name = tuple[bytes, ...]

ROOT: Name = ()
MAX_LABEL = 63
MAX_WIRE = 255


class NameError_(ValueError):
    """A name that cannot be a DNS name; the message says why."""


def from_text(text: str, origin: Name | None = None) -> Name:
    """Parse presentation format: absolute if it ends in '.', else relative to origin.

    '@' is the origin.  Backslash escapes (\\. and \\DDD) are honoured.
    """
    if text == "@":
        if origin is None:
            raise NameError_("'@' used with no origin")
        return origin
    if text == ".":
        return ROOT
    labels: list[bytes] = []
    current = bytearray()
    i = 0
    absolute = False
    raw = text.encode("utf-8")
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == 0x5C:  # backslash
            if i + 3 < n and raw[i + 1 : i + 4].isdigit():
                value = int(raw[i + 1 : i + 4])
                if value > 255:
                    raise NameError_(f"bad escape in name {text!r}")
                current.append(value)
                i += 4
                continue
            if i + 1 < n and raw[i + 1 : i + 2].isdigit():
                raise NameError_(f"bad escape in name {text!r}: \\DDD needs three digits")
            if i + 1 >= n:
                raise NameError_(f"dangling backslash in name {text!r}")
            current.append(raw[i + 1])
            i += 2
            continue
        if c == 0x2E:  # dot
            if not current:
                raise NameError_(f"empty label in name {text!r}")
            labels.append(bytes(current).lower())
            current = bytearray()
            if i == n - 1:
                absolute = True
            i += 1
            continue
        current.append(c)
        i += 1
    if current:
        labels.append(bytes(current).lower())
    name: Name = tuple(labels)
    if not absolute:
        if origin is None:
            raise NameError_(f"relative name {text!r} with no origin")
        name = name + origin
    check(name, text)
    return name


def check(name: Name, shown: str | None = None) -> None:
    """Raise NameError_ if a label or the whole name is too long."""
    for label in name:
        if len(label) > MAX_LABEL:
            raise NameError_(f"label longer than {MAX_LABEL} octets in {shown or to_text(name)!r}")
        if not label:
            raise NameError_(f"empty label in {shown or to_text(name)!r}")
    if wire_length(name) > MAX_WIRE:
        raise NameError_(f"name longer than {MAX_WIRE} octets: {shown or to_text(name)!r}")


def wire_length(name: Name) -> int:
    return sum(len(label) + 1 for label in name) + 1


def to_wire(name: Name) -> bytes:
    """Uncompressed wire form."""
    return b"".join(bytes((len(label),)) + label for label in name) + b"\x00"


def _escape(label: bytes) -> str:
    out = []
    for b in label:
        ch = chr(b)
        if ch in '.\\"();@$ ':
            out.append("\\" + ch)
        elif 0x21 <= b <= 0x7E:
            out.append(ch)
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def to_text(name: Name) -> str:
    """Absolute presentation form with the trailing dot."""
    if not name:
        return "."
    return ".".join(_escape(label) for label in name) + "."


def is_subdomain(name: Name, parent: Name) -> bool:
    """True when name equals parent or lies below it."""
    if not parent:
        return True
    return len(name) >= len(parent) and name[len(name) - len(parent) :] == parent


def parent(name: Name) -> Name:
    return name[1:]
