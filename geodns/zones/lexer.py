"""Master-file tokens (RFC 1035 section 5.1), each stamped with its line.

The lexer only cuts text into logical entries: one physical line, or several
joined by parentheses.  It keeps escapes undecoded, because what an escape
means depends on where the token ends up (a name keeps ``\\.`` as a literal
dot inside a label; a character-string turns it into a byte), and that is the
parser's knowledge, not ours.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..errors import Problem

_BLANK = " \t"
_DELIMITERS = " \t;()\""


@dataclass(frozen=True, slots=True)
class Token:
    """One word or quoted string.

    ``text`` is the raw source text with escapes left in place; for a quoted
    string it is what lies between the quotes.
    """

    text: str
    line: int
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """One logical line: a directive or a resource record.

    ``blank_owner`` is true when the line started with white space, which in a
    master file means "same owner as the previous record".  ``ok`` is false when
    the lexer already reported a problem on this entry; the parser then only
    looks at the owner (so that later blank-owner lines still mean the right
    name) and skips the rest, instead of piling up follow-on errors.
    """

    line: int
    tokens: tuple[Token, ...]
    blank_owner: bool
    ok: bool = True


def tokenize(text: str, source: str, problems: list[Problem]) -> Iterator[Entry]:
    """Yield the entries of a master file, appending lexical problems to ``problems``."""
    depth = 0
    open_line = 0
    tokens: list[Token] = []
    start = 0
    blank_owner = False
    ok = True
    # split('\n') rather than splitlines(): the latter also breaks on form feeds
    # and Unicode separators, which would make line numbers disagree with editors.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if depth == 0:
            tokens = []
            start = number
            blank_owner = line[:1] in (" ", "\t") if line else False
            ok = True
        i = 0
        n = len(line)
        while i < n:
            c = line[i]
            if c in _BLANK:
                i += 1
            elif c == ";":
                break
            elif c == "(":
                if depth == 0:
                    open_line = number
                depth += 1
                i += 1
            elif c == ")":
                if depth == 0:
                    problems.append(Problem(source, number, "unbalanced parentheses: ')' without '('"))
                    ok = False
                else:
                    depth -= 1
                i += 1
            elif c == '"':
                j = i + 1
                while j < n and line[j] != '"':
                    j += 2 if line[j] == "\\" else 1
                if j >= n:
                    problems.append(Problem(source, number, "unterminated quoted string"))
                    ok = False
                    break
                tokens.append(Token(line[i + 1:j], number, quoted=True))
                i = j + 1
            else:
                j = i
                while j < n and line[j] not in _DELIMITERS:
                    j += 2 if line[j] == "\\" else 1
                j = min(j, n)
                tokens.append(Token(line[i:j], number))
                i = j
        if depth == 0 and tokens:
            yield Entry(start, tuple(tokens), blank_owner, ok)
    if depth > 0:
        problems.append(Problem(source, open_line, "unbalanced parentheses: '(' is never closed"))
        if tokens:
            yield Entry(start, tuple(tokens), blank_owner, ok=False)


def decode_string(raw: str) -> bytes:
    """Turn a character-string's presentation text into its octets.

    ``\\X`` is X itself and ``\\DDD`` is the octet with that decimal value
    (RFC 1035 section 5.1).  Raises ValueError with a reason on a bad escape.
    """
    data = raw.encode("utf-8")
    if b"\\" not in data:
        return data
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        c = data[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        digits = data[i + 1:i + 4]
        if digits[:1].isdigit():
            if len(digits) < 3 or not digits.isdigit():
                raise ValueError(f"bad escape '\\{digits.decode('utf-8', 'replace')}': \\DDD needs three digits")
            value = int(digits)
            if value > 255:
                raise ValueError(f"bad escape '\\{digits.decode()}': value above 255")
            out.append(value)
            i += 4
        elif i + 1 < n:
            out.append(data[i + 1])
            i += 2
        else:
            raise ValueError("dangling backslash at the end of a string")
    return bytes(out)
