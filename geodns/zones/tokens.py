"""dnspython's zone file tokenizer, scanning the whole text with regular expressions.

``dns.tokenizer.Tokenizer`` reads its input one character at a time through a
file object; for a zone of 100,000 records that is most of the time spent
reading it.  ``TextTokenizer`` holds the whole text and finds each token with
one regular expression match, handing out the same tokens (type, value,
``has_escape``, ``comment``), raising the same errors and keeping the same
``line_number`` as dnspython's tokenizer, so dnspython's zone reader and rdata
parsers run on it unchanged.  tests/test_zone_tokens.py compares the two on
generated text.

The rules it copies (dnspython 2.x, ``Tokenizer.get``): outside a quoted
string a CR, LF or CRLF ends a line, and inside parentheses line ends are
white space; inside a quoted string a CR is a plain character and an LF is an
error unless escaped; a backslash escapes any character but a line end (or the
end of the text) outside quotes; a quoted string's closing quote is consumed by
the next ``get``; the line number counts the line end just after a token,
because dnspython has read it to find where the token ends.
"""

from __future__ import annotations

import re

import dns.exception
import dns.name
import dns.tokenizer
from dns.tokenizer import COMMENT, EOF, EOL, IDENTIFIER, QUOTED_STRING, WHITESPACE, Token

# Optional blanks, then a word: characters other than delimiters, or a backslash and
# any character but a line end.  A word that stops at a backslash stops at a bad escape.
_BLANKS_WORD = re.compile(r'[ \t]*((?:[^ \t\n\r;()"\\]|\\[^\n\r])*)')
_BLANKS = re.compile(r"[ \t]*")
_BLANKS_AND_LINES = re.compile(r"[ \t\r\n]*")
_COMMENT = re.compile(r"[^\r\n]*")
_QUOTED = re.compile(r'(?:[^"\\\n]|\\[\s\S])*')


def _line_ends(text: str) -> int:
    """How many line ends (CR, LF or CRLF) ``text`` holds."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


class TextTokenizer(dns.tokenizer.Tokenizer):
    """A ``dns.tokenizer.Tokenizer`` over a string, a token per regular expression match.

    ``pos`` is where scanning goes on; ``line`` the line there.  After a word
    dnspython has also read the character that ended it; ``peeked`` says so,
    and ``line_number`` counts that character if it ends a line.
    ``entry_pos`` and ``entry_line`` mark where the zone reader last asked for
    the start of an entry (the only ``get`` that wants comments).  ``failed``
    says the tokenizer itself raised: its state is no good after that.
    """

    def __init__(self, text: str, filename: str = "<string>", idna_codec: dns.name.IDNACodec | None = None):
        super().__init__("", filename, idna_codec)
        self.text = text
        self.end = len(text)
        self.pos = 0
        self.line = 1
        self.peeked = False
        self.entry_pos = 0
        self.entry_line = 1
        self.failed = False

    @property
    def line_number(self) -> int:
        pos = self.pos
        return self.line + (self.peeked and pos < self.end and self.text[pos] in "\r\n")

    @line_number.setter
    def line_number(self, value: int) -> None:
        self.line, self.peeked = value, False

    def get(self, want_leading: bool = False, want_comment: bool = False) -> Token:
        token = self.ungotten_token
        if token is not None:
            self.ungotten_token = None
            ttype = token.ttype
            if ttype == WHITESPACE:
                if want_leading:
                    return token
            elif ttype == COMMENT:
                if want_comment:
                    return token
            else:
                return token
        pos = self.pos
        if want_comment:
            self.entry_pos, self.entry_line = pos, self.line
        # The common case, a word after optional blanks, in one match.
        match = _BLANKS_WORD.match(self.text, pos)
        start, end = match.span(1)  # type: ignore[union-attr]  # every text matches
        if end > start and (start == pos or not want_leading):
            if end < self.end and self.text[end] == "\\":
                self._bad_escape(end)
            value = match.group(1)  # type: ignore[union-attr]  # as above
            self.pos = end
            self.peeked = True
            return Token(IDENTIFIER, value, "\\" in value)
        return self._other(want_leading, want_comment)

    def _skip(self, pos: int) -> int:
        """Past blanks, and past line ends too inside parentheses (dnspython's skip_whitespace)."""
        if self.multiline:
            end = _BLANKS_AND_LINES.match(self.text, pos).end()  # type: ignore[union-attr]  # the pattern matches the empty string
            self.line += _line_ends(self.text[pos:end])
            return end
        return _BLANKS.match(self.text, pos).end()  # type: ignore[union-attr]  # the pattern matches the empty string

    def _past_line_end(self, pos: int) -> int:
        """Past the line end at ``pos`` (CRLF is one), counting it."""
        self.line += 1
        return pos + (2 if self.text.startswith("\r\n", pos) else 1)

    def _fail(self, pos: int, error: dns.exception.DNSException) -> dns.exception.DNSException:
        self.pos, self.peeked, self.failed = pos, False, True
        return error

    def _bad_escape(self, pos: int) -> None:
        """A backslash at ``pos`` before a line end or the end of the text."""
        if pos + 1 < self.end:
            raise self._fail(self._past_line_end(pos + 1), dns.exception.UnexpectedEnd())
        raise self._fail(self.end, dns.exception.UnexpectedEnd())

    def _other(self, want_leading: bool, want_comment: bool) -> Token:
        """Everything but a plain word: white space, parentheses, quotes, comments, line ends, EOF."""
        text, size = self.text, self.end
        self.peeked = False
        start = self.pos
        pos = self._skip(start)
        if want_leading and pos > start:
            self.pos, self.peeked = pos, True
            return Token(WHITESPACE, " ")
        while True:
            if pos >= size:
                if self.multiline:
                    raise self._fail(size, dns.exception.SyntaxError("unbalanced parentheses"))
                self.pos = size
                return Token(EOF, "")
            c = text[pos]
            if c == "(":
                self.multiline += 1
                pos = self._skip(pos + 1)
            elif c == ")":
                if self.multiline <= 0:
                    raise self._fail(pos + 1, dns.exception.SyntaxError())
                self.multiline -= 1
                pos = self._skip(pos + 1)
            elif c == '"':
                if self.quoting:  # the closing quote of the last string
                    self.quoting = False
                    pos = self._skip(pos + 1)
                else:
                    return self._quoted(pos + 1)
            elif c == "\n" or c == "\r":  # inside parentheses _skip went past these
                self.pos = self._past_line_end(pos)
                return Token(EOL, "\n")
            elif c == ";":
                pos, comment = self._comment(pos + 1)
                if want_comment:
                    self.pos, self.peeked = pos, True
                    return Token(COMMENT, comment)
                if pos >= size:
                    if self.multiline:
                        raise self._fail(size, dns.exception.SyntaxError("unbalanced parentheses"))
                    self.pos = size
                    return Token(EOF, comment=comment)
                pos = self._past_line_end(pos)
                if not self.multiline:
                    self.pos = pos
                    return Token(EOL, "\n", comment=comment)
                pos = self._skip(pos)
            else:
                match = _BLANKS_WORD.match(text, pos)
                end = match.end()  # type: ignore[union-attr]  # the pattern matches the empty string
                if end < size and text[end] == "\\":
                    self._bad_escape(end)
                value = text[pos:end]
                self.pos, self.peeked = end, True
                return Token(IDENTIFIER, value, "\\" in value)

    def _comment(self, pos: int) -> tuple[int, str]:
        end = _COMMENT.match(self.text, pos).end()  # type: ignore[union-attr]  # the pattern matches the empty string
        return end, self.text[pos:end]

    def _quoted(self, pos: int) -> Token:
        """A quoted string starting at ``pos``; its closing quote is left for the next get."""
        text = self.text
        end = _QUOTED.match(text, pos).end()  # type: ignore[union-attr]  # the pattern matches the empty string
        value = text[pos:end]
        self.line += value.count("\n")  # escaped line ends
        if end >= self.end or text[end] == "\\":  # the text ends inside the string
            raise self._fail(self.end, dns.exception.UnexpectedEnd())
        if text[end] == "\n":
            self.line += 1
            raise self._fail(end + 1, dns.exception.SyntaxError("newline in quoted string"))
        self.quoting = True
        self.pos, self.peeked = end, True
        return Token(QUOTED_STRING, value, "\\" in value)
