"""TextTokenizer hands out what dnspython's own Tokenizer does, token for token.

Both read the same text with the same sequence of calls (want_leading,
want_comment, unget); every token (type, value, has_escape, comment), every
error (type and message) and the line number after every call must agree.
The texts are generated from the pieces zone files are made of, including
the awkward ones (CR, CRLF, escapes at line ends, quotes across lines,
parentheses), plus every string in the zone tests.
"""

from __future__ import annotations

import ast
import random
from pathlib import Path

import dns.exception
import dns.tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.zones.tokens import TextTokenizer

TESTS = Path(__file__).resolve().parent
PIECES = [
    " ", "  ", "\t", "\n", "\r", "\r\n", "\n\n", ";", "; a comment", "(", ")", "( ", " )", '"', '""', '"a b"',
    "\\", "\\\\", "\\ ", '\\"', "\\065", "\\\n", "\\\r\n", "\\;", "@", "$ORIGIN", "$TTL", "www", "example.com.",
    "IN", "A", "TXT", "SOA", "300", "192.0.2.1", "é", "\x00", "\f",
]  # fmt: skip


def _corpus() -> list[str]:
    """Every string literal in the zone tests, and the example zone."""
    tree = ast.parse((TESTS / "test_zones.py").read_text())
    texts = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    texts.add((TESTS.parent / "zones" / "gslb.example.com.zone").read_text())
    return sorted(texts)


def _describe(token: dns.tokenizer.Token) -> tuple:
    return (token.ttype, token.value, token.has_escape, token.comment)


def _run(tokenizer: dns.tokenizer.Tokenizer, calls: list[tuple[bool, bool, bool]]) -> list[tuple]:
    """What a tokenizer does under a script of (want_leading, want_comment, unget) calls."""
    seen: list[tuple] = []
    for want_leading, want_comment, unget in calls:
        try:
            token = tokenizer.get(want_leading, want_comment)
        except dns.exception.DNSException as e:
            seen.append(("error", type(e).__name__, str(e), tokenizer.line_number))
            return seen
        end_line = (
            tokenizer.line
            if isinstance(tokenizer, TextTokenizer)
            else tokenizer.line_number - (tokenizer.ungotten_char == "\n")
        )
        seen.append((*_describe(token), tokenizer.line_number, end_line))
        if unget:
            tokenizer.unget(token)
        if token.is_eof() and not unget:
            return seen
    return seen


def _script(seed: int, length: int) -> list[tuple[bool, bool, bool]]:
    rng = random.Random(seed)
    return [(rng.random() < 0.4, rng.random() < 0.3, rng.random() < 0.15) for _ in range(length)]


def _same(text: str, seed: int) -> None:
    calls = _script(seed, 4 * len(text) + 8)
    ours = _run(TextTokenizer(text, "t.zone"), calls)
    theirs = _run(dns.tokenizer.Tokenizer(text, "t.zone"), calls)
    assert ours == theirs, text


zoneish = st.lists(st.one_of(st.sampled_from(PIECES), st.text(' \t\n\r;()"\\a1.é', max_size=3)), max_size=40).map(
    "".join
)


@settings(max_examples=3000, deadline=None)
@given(zoneish, st.integers(0, 2**32))
def test_same_tokens_as_dnspython_on_generated_text(text, seed):
    _same(text, seed)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.integers(0, 2**32))
def test_same_tokens_as_dnspython_on_any_text(text, seed):
    _same(text, seed)


def test_same_tokens_as_dnspython_on_the_zone_tests():
    corpus = _corpus()
    assert len(corpus) > 100
    for i, text in enumerate(corpus):
        for seed in range(4):
            _same(text, seed * 1000 + i)
        # as the zone reader calls it: comments and leading blanks only at an entry's start
        ours, theirs = TextTokenizer(text, "t.zone"), dns.tokenizer.Tokenizer(text, "t.zone")
        for tokenizer in (ours, theirs):
            tokenizer.seen = []  # type: ignore[attr-defined]
            try:
                start = True
                while True:
                    token = tokenizer.get(start, start)
                    tokenizer.seen.append((*_describe(token), tokenizer.line_number))  # type: ignore[attr-defined]
                    if token.is_eof():
                        break
                    start = token.is_eol()
            except dns.exception.DNSException as e:
                tokenizer.seen.append((str(e), tokenizer.line_number))  # type: ignore[attr-defined]
        assert ours.seen == theirs.seen, text  # type: ignore[attr-defined]


def test_a_quoted_string_keeps_a_lone_cr_and_fails_on_a_newline():
    """The rules that are easy to get wrong, spelled out."""
    tokens = TextTokenizer('a "x\ry" b\r\nc "d\\\ne" "f\ng"', "t.zone")
    got = [tokens.get() for _ in range(6)]
    assert [(t.ttype, t.value) for t in got] == [
        (dns.tokenizer.IDENTIFIER, "a"),
        (dns.tokenizer.QUOTED_STRING, "x\ry"),
        (dns.tokenizer.IDENTIFIER, "b"),
        (dns.tokenizer.EOL, "\n"),
        (dns.tokenizer.IDENTIFIER, "c"),
        (dns.tokenizer.QUOTED_STRING, "d\\\ne"),
    ]
    assert tokens.line_number == 3
    try:
        tokens.get()
    except dns.exception.SyntaxError as e:
        assert str(e) == "newline in quoted string"
        assert tokens.line_number == 4
    else:
        raise AssertionError("a newline in a quoted string must fail")
