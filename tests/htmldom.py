"""A small element tree from ``html.parser``: enough to read the status page (ours, or Chromium's --dump-dom)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(
        self, tag: str | None = None, cls: str | None = None, where: Callable[[Element], bool] | None = None
    ) -> list[Element]:
        return [
            e
            for e in self.iter()
            if (tag is None or e.tag == tag)
            and (cls is None or cls in e.attrs.get("class", "").split())
            and (where is None or where(e))
        ]

    def find(
        self, tag: str | None = None, cls: str | None = None, where: Callable[[Element], bool] | None = None
    ) -> Element:
        found = self.find_all(tag, cls, where)
        assert found, f"no <{tag} class={cls}>"
        return found[0]

    @property
    def text(self) -> str:
        """The text a reader sees, whitespace collapsed (SVG titles and styles left out)."""
        parts: list[str] = []

        def walk(e: Element) -> None:
            if e.tag in ("title", "style"):
                return
            for child in e.children:
                if isinstance(child, str):
                    parts.append(child)
                else:
                    walk(child)

        walk(self)
        return re.sub(r"\s+", " ", "".join(parts)).strip()

    def cells(self) -> list[Element]:
        return [c for c in self.children if isinstance(c, Element) and c.tag in ("td", "th")]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(html: str) -> Element:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def shares(cell: Element) -> dict[str, int]:
    """'eu-west-1 67%, eu-west-2 33%' -> {cluster: percent}; 'nothing (NODATA)' -> {}."""
    return {name: int(pct) for name, pct in re.findall(r"([\w.-]+) (\d+)%", cell.text)}
